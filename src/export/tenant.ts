const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * True when two tenant ids name the same tenant for certain: GUIDs and domain names compare without regard to
 * case (both are case-insensitive). A GUID and a domain cannot be compared without asking Entra, so they are
 * not the same here; {@link tenantMismatch} says what to do then.
 */
export function sameTenant(a: string, b: string): boolean {
  return a.trim().toLowerCase() === b.trim().toLowerCase();
}

/**
 * Why a stored tenant id (the checkpoint's) does not match DEFENDER_TENANT_ID, as the end of a sentence that
 * starts with where it was stored ("The checkpoint in state/ "); undefined when they match.
 */
export function tenantMismatch(stored: string, configured: string): string | undefined {
  if (sameTenant(stored, configured)) return undefined;
  if (GUID.test(stored) !== GUID.test(configured)) {
    const fix = GUID.test(stored)
      ? `set DEFENDER_TENANT_ID to the tenant's GUID '${stored}'`
      : `set DEFENDER_TENANT_ID back to '${stored}', the value this checkpoint was written with`;
    return (
      `was written for tenant '${stored}' and DEFENDER_TENANT_ID is '${configured}': one is a domain name, the other a GUID, ` +
      `so the exporter cannot tell whether they are the same tenant. If they are, ${fix}.`
    );
  }
  return `belongs to tenant '${stored}', not DEFENDER_TENANT_ID '${configured}'.`;
}
