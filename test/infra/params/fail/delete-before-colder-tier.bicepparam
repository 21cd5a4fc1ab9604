// expect: coolAfterDays (30), colderAfterDays (90) and deleteAfterDays (60) must increase
using '../../../../infra/main.bicep'

param defenderClientId = '00000000-0000-0000-0000-000000000001'
param deploymentTime = '2026-12-01T10:00:00Z'
param deleteAfterDays = 60
