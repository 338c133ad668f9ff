// A clock with timers, so the work queue and the elector run on fake time in tests.
export interface TimerClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): () => void;
}

export const realTimerClock: TimerClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return () => clearTimeout(t);
  },
};
