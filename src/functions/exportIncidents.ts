import { app } from '@azure/functions';
import { exportIncidentsHandler } from './exportIncidentsHandler';

/**
 * The timer: hourly by default, schedule from the EXPORT_SCHEDULE app setting (NCRONTAB, UTC).
 * runOnStartup stays false: it would fire on every scale-out and restart
 * (docs/azure-notes.md#azure-functions).
 */
app.timer('exportIncidents', {
  schedule: '%EXPORT_SCHEDULE%',
  runOnStartup: false,
  useMonitor: true,
  handler: exportIncidentsHandler,
});
