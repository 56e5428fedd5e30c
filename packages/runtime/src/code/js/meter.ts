/**
 * The JS fuel unit. QuickJS counts down an interrupt counter on branches and
 * calls and calls the host's interrupt handler each time it reaches zero,
 * then reloads it with JS_INTERRUPT_COUNTER_INIT; fuel is the number of
 * handler calls times that reload value.
 */
export const JS_FUEL_PER_INTERRUPT = 10_000;
