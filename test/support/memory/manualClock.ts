import type { Clock } from '../../../src/export/ports';

/** A {@link Clock} that moves only when a test moves it. */
export class ManualClock implements Clock {
  constructor(private time = 0) {}

  now(): number {
    return this.time;
  }

  advance(ms: number): void {
    this.time += ms;
  }

  /** Moves to `ms`, never back. */
  set(ms: number): void {
    this.time = Math.max(this.time, ms);
  }
}
