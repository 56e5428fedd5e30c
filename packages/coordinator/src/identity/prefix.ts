/**
 * The network a node connects from, coarse enough that one operator's many
 * addresses count as one: an IPv4 /24 or an IPv6 /48. Used to limit how many
 * new node identities one place may enrol (Sybil resistance), and by
 * verification to keep replicas of a task apart.
 */
export function ipPrefix(remote: string): string {
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.\d{1,3}$/i.exec(remote);
  if (v4) return `${v4[1]}.${v4[2]}.${v4[3]}.0/24`;
  const groups = expandV6(remote);
  return groups ? `${groups.slice(0, 3).join(':')}::/48` : remote;
}

function expandV6(addr: string): string[] | undefined {
  if (!addr.includes(':')) return undefined;
  const [head = '', tail] = addr.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = 8 - h.length - t.length;
  if (missing < 0 || (tail === undefined && h.length !== 8)) return undefined;
  const all = [...h, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...t];
  return all.every((g) => /^[0-9a-f]{1,4}$/i.test(g)) ? all.map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')) : undefined;
}
