/**
 * True when two tenant ids name the same tenant. Entra tenant ids are GUIDs, which compare case-insensitively
 * (RFC 9562 §4: their hex digits are not case-sensitive); a verified domain likewise (DNS names are
 * case-insensitive, RFC 4343).
 */
export function sameTenantId(a: string, b: string): boolean {
  return a.trim().toLowerCase() === b.trim().toLowerCase();
}
