// Many tenants (docs/tenants.md): two customer tenants, each with its own container, one on the legacy API.
using '../../../../infra/main.bicep'

param defenderClientId = '00000000-0000-0000-0000-000000000001'
param deploymentTime = '2026-12-01T10:00:00Z'
param tenants = [
  { tenantId: '0c8e3f5a-7d21-4b9e-a6c4-5f2e1d0b9a87', container: 'contoso-incidents', name: 'Contoso' }
  { tenantId: '5d6e7f80-1a2b-4c3d-8e9f-0a1b2c3d4e5f', container: 'fabrikam-incidents', api: 'legacy' }
]
