/** Exit code of a command stopped by Ctrl-C or SIGTERM (128 + SIGINT), as shells report it. */
export const INTERRUPTED_EXIT_CODE = 130;

/**
 * Runs `task` with an AbortSignal that aborts on the first SIGINT or SIGTERM, so that a long command stops
 * cleanly (what is complete stays, a rerun resumes). The handlers are removed when the task settles, or after
 * the first signal, so a second Ctrl-C ends the process at once.
 */
export async function interruptible<T>(task: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const dispose = (): void => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  function onSignal(): void {
    dispose();
    process.stderr.write('Interrupted: stopping; run the same command again to resume.\n');
    controller.abort(new Error('interrupted'));
  }
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await task(controller.signal);
  } finally {
    dispose();
  }
}
