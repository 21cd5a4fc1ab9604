/** A failure a later run gets past by itself: EX_TEMPFAIL of sysexits(3), which schedulers know to retry. */
export const TRANSIENT_EXIT_CODE = 75;
