// Keeps the page's numbers current without a reload: polls GET /v1/meta and says when the
// data moved (its data_version, or the business day, changed) and how fresh it is.
//
// Every POLL_MS while the tab is visible; every SYNCING_POLL_MS while a sync runs (its pages
// land every moment); not at all while the tab is hidden (one poll when it shows again);
// after a failed poll, twice as long each time up to MAX_BACKOFF_MS. The freshness ticks
// every TICK_MS between polls, counted from the last answer.

import { AuthError } from './api.js';

export const POLL_MS = 10_000;
export const SYNCING_POLL_MS = 3_000;
export const MAX_BACKOFF_MS = 5 * 60_000;
const TICK_MS = 15_000;

export class LiveData {
  /**
   * ``api``: the page's Api. ``onMoved()``: the data changed since the previous answer.
   * ``onFreshness(meta, ageSeconds, failing)``: after every poll and tick; ``ageSeconds``
   * is null before any successful sync. ``onAuthError()``: the token is no longer valid.
   */
  constructor(api, { onMoved, onFreshness, onAuthError }) {
    this.api = api;
    this.onMoved = onMoved;
    this.onFreshness = onFreshness;
    this.onAuthError = onAuthError;
    this.meta = null;
    this.receivedAt = 0;
    this.failures = 0;
    this.timer = null;
    this.ticker = null;
    this.stopped = false;
    this.onVisibility = () => {
      if (document.visibilityState === 'visible') this.poll();
    };
  }

  /** The first poll (the version the page's numbers are read at), then the schedule. */
  async start() {
    document.addEventListener('visibilitychange', this.onVisibility);
    this.ticker = window.setInterval(() => this.tell(), TICK_MS);
    await this.poll();
  }

  stop() {
    this.stopped = true;
    window.clearTimeout(this.timer);
    window.clearInterval(this.ticker);
    document.removeEventListener('visibilitychange', this.onVisibility);
  }

  /** Seconds since the newest successful sync, now; null before any. */
  age() {
    if (!this.meta || this.meta.freshness_seconds === null) return null;
    return this.meta.freshness_seconds + (Date.now() - this.receivedAt) / 1000;
  }

  tell() {
    if (this.meta) this.onFreshness(this.meta, this.age(), this.failures > 0);
  }

  async poll() {
    window.clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped || document.visibilityState !== 'visible') return;
    let syncing = false;
    try {
      const meta = await this.api.fetchJson('/v1/meta');
      if (this.stopped) return;
      const moved = this.meta && (meta.data_version !== this.meta.data_version || meta.today !== this.meta.today);
      this.meta = meta;
      this.receivedAt = Date.now();
      this.failures = 0;
      syncing = meta.syncs.some((sync) => sync.running);
      if (moved) this.onMoved();
    } catch (error) {
      if (error instanceof AuthError) {
        this.stop();
        this.onAuthError();
        return;
      }
      this.failures += 1;
    }
    this.tell();
    if (this.stopped || this.timer !== null) return; // a visibility poll rescheduled already
    const delay = this.failures
      ? Math.min(POLL_MS * 2 ** this.failures, MAX_BACKOFF_MS)
      : syncing
        ? SYNCING_POLL_MS
        : POLL_MS;
    this.timer = window.setTimeout(() => this.poll(), delay);
  }
}
