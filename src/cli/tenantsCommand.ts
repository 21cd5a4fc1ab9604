import { isTenantIdentifier, loadConsentConfig, type ConsentConfig } from '../config';
import { ConfigError } from '../errors';
import { parseOptions, type Command } from './command';
import { commandHelp } from './commandHelp';

/**
 * The admin-consent URL of the app for a customer tenant: the administrator who opens it grants the app the
 * application permissions its registration requests, which creates its service principal in their tenant
 * (https://learn.microsoft.com/en-us/entra/identity-platform/v2-admin-consent). On the configured authority,
 * so a sovereign cloud gets its own (e.g. https://login.microsoftonline.us).
 */
export function adminConsentUrl(authorityHost: string, tenant: string, clientId: string): string {
  const url = new URL(`${authorityHost.replace(/\/+$/, '')}/${encodeURIComponent(tenant)}/adminconsent`);
  url.searchParams.set('client_id', clientId);
  return url.href;
}

/** The tenant and app `--tenant` names: a DEFENDER_TENANTS entry (name or ID), else a tenant ID or domain. */
function consentTarget(config: ConsentConfig, key: string): { tenant: string; clientId: string } {
  const wanted = key.trim().toLowerCase();
  const listed = config.tenants?.find((t) => t.tenantId === wanted || t.name.toLowerCase() === wanted);
  const clientId = listed?.clientId || config.clientId;
  const problems: string[] = [];
  if (!listed && !isTenantIdentifier(key.trim()))
    problems.push(
      `--tenant '${key}' is neither in DEFENDER_TENANTS nor a tenant ID or domain: give the customer's tenant ID (a GUID) or a verified domain.`,
    );
  if (!clientId)
    problems.push(
      'DEFENDER_CLIENT_ID is missing: set it to the application (client) ID of the multi-tenant app.',
    );
  if (problems.length > 0) throw new ConfigError(problems);
  return { tenant: listed?.tenantId ?? key.trim(), clientId: clientId ?? '' };
}

/** `defender-export tenants consent-url | list`: onboarding of DEFENDER_TENANTS. */
export const tenantsCommand: Command = {
  ...commandHelp.tenants,
  run(args) {
    const [action, ...rest] = args;
    const { values } = parseOptions(rest, {
      tenant: { type: 'string' },
      json: { type: 'boolean', default: false },
      settings: { type: 'string', default: 'local.settings.json' },
    });
    const config = loadConsentConfig(values.settings);
    if (action === 'consent-url') {
      if (values.tenant === undefined)
        throw new ConfigError([
          '--tenant is missing: give the customer tenant (its ID, domain or DEFENDER_TENANTS name).',
        ]);
      const { tenant, clientId } = consentTarget(config, values.tenant);
      process.stdout.write(`${adminConsentUrl(config.authorityHost, tenant, clientId)}\n`);
      return Promise.resolve(0);
    }
    if (action === 'list') {
      const tenants = config.tenants ?? [];
      if (values.json) process.stdout.write(`${JSON.stringify(tenants, null, 2)}\n`);
      else if (tenants.length === 0)
        process.stdout.write('DEFENDER_TENANTS is not set: one tenant, DEFENDER_TENANT_ID.\n');
      else
        for (const t of tenants)
          process.stdout.write(
            `${t.name}  ${t.tenantId}  container ${t.container}  ${t.api} API  app ${t.clientId}\n`,
          );
      return Promise.resolve(0);
    }
    throw new ConfigError([
      `tenants needs an action: 'consent-url --tenant <id>' or 'list' (got ${action === undefined ? 'none' : `'${action.slice(0, 20)}'`}).`,
    ]);
  },
};
