// expect: deleteAfterDays (180) is shorter than immutabilityDays (365)
using '../../../../infra/main.bicep'

param defenderClientId = '00000000-0000-0000-0000-000000000001'
param deploymentTime = '2026-12-01T10:00:00Z'
param immutabilityDays = 365
param deleteAfterDays = 180
