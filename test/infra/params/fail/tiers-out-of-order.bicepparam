// expect: coolAfterDays (90), colderAfterDays (30) and deleteAfterDays (0) must increase
using '../../../../infra/main.bicep'

param defenderClientId = '00000000-0000-0000-0000-000000000001'
param deploymentTime = '2026-12-01T10:00:00Z'
param coolAfterDays = 90
param colderAfterDays = 30
