// expect-param: staleAfterHours
// expect: minimum allowable value is 2
using '../../../../infra/main.bicep'

param defenderClientId = '00000000-0000-0000-0000-000000000001'
param deploymentTime = '2026-12-01T10:00:00Z'
param staleAfterHours = 1
