// expect: staleAfterHours (12) must exceed 1470 minutes: exportSchedule '0 0 0 * * *' runs every 1440 minutes
using '../../../../infra/main.bicep'

param defenderClientId = '00000000-0000-0000-0000-000000000001'
param deploymentTime = '2026-12-01T10:00:00Z'
param exportSchedule = '0 0 0 * * *'
param staleAfterHours = 12
