/** Where security events go: the audit log, once the coordinator listens (see audit/). */
export interface AuditSink {
  record(...events: Array<{ type: string; actor?: string; org?: string; subject?: string; data?: Record<string, unknown> }>): Promise<void>;
}
