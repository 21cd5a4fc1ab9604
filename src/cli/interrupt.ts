/** Exit code of a command stopped by Ctrl-C or SIGTERM (128 + SIGINT), as shells report it. */
export const INTERRUPTED_EXIT_CODE = 130;

/**
 * An AbortSignal that aborts on the first SIGINT or SIGTERM, so that a long command stops cleanly (what is
 * complete stays, a rerun resumes). The handlers are removed by `dispose()`, or after the first signal, so a
 * second Ctrl-C ends the process at once.
 */
export function abortOnInterrupt(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSignal = (): void => {
    dispose();
    process.stderr.write('Interrupted: stopping; run the same command again to resume.\n');
    controller.abort(new Error('interrupted'));
  };
  const dispose = (): void => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return { signal: controller.signal, dispose };
}
