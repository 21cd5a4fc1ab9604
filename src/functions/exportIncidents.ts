import { app, output } from '@azure/functions';
import { fanOutSettings } from '../config';
import { exportIncidentsHandler } from './exportIncidentsHandler';
import { exportTenantHandler } from './exportTenantHandler';
import { createFanOutTenantsHandler } from './fanOutTenantsHandler';

/**
 * The timer: hourly by default, schedule from the EXPORT_SCHEDULE app setting (NCRONTAB, UTC).
 * runOnStartup stays false: it would fire on every scale-out and restart
 * (docs/azure-notes.md#azure-functions).
 *
 * With DEFENDER_TENANTS the timer only fans out: one message per tenant on EXPORT_QUEUE (host storage, the
 * AzureWebJobsStorage connection), and `exportTenant`, queue-triggered, exports one tenant per message; the
 * host scales it out and retries it (host.json `extensions.queues`, docs/tenants.md). Without it nothing
 * changes: the timer exports the one tenant and no queue is polled.
 */
if (fanOutSettings().isFanOut) {
  const tenantQueue = output.storageQueue({ queueName: '%EXPORT_QUEUE%', connection: 'AzureWebJobsStorage' });
  app.timer('exportIncidents', {
    schedule: '%EXPORT_SCHEDULE%',
    runOnStartup: false,
    useMonitor: true,
    extraOutputs: [tenantQueue],
    handler: createFanOutTenantsHandler(tenantQueue),
  });
  app.storageQueue('exportTenant', {
    queueName: '%EXPORT_QUEUE%',
    connection: 'AzureWebJobsStorage',
    handler: exportTenantHandler,
  });
} else {
  app.timer('exportIncidents', {
    schedule: '%EXPORT_SCHEDULE%',
    runOnStartup: false,
    useMonitor: true,
    handler: exportIncidentsHandler,
  });
}
