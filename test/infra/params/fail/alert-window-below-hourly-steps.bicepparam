// expect: staleAfterHours (6) must exceed 390 minutes: exportSchedule '0 0 */6 * * *' runs every 360 minutes
using '../../../../infra/main.bicep'

param defenderClientId = '00000000-0000-0000-0000-000000000001'
param deploymentTime = '2026-12-01T10:00:00Z'
param exportSchedule = '0 0 */6 * * *'
param staleAfterHours = 6
