// A locked WORM policy (not sent again), Archive on GRS, deletion after the retention, a daily schedule.
using '../../../../infra/main.bicep'

param defenderClientId = '00000000-0000-0000-0000-000000000001'
param deploymentTime = '2026-12-01T10:00:00Z'
param environmentName = 'prod'
param exportStorageSku = 'Standard_GRS'
param colderTier = 'Archive'
param immutabilityDays = 365
param immutabilityPolicyLocked = true
param deleteAfterDays = 365
param exportSchedule = '0 30 2 * * *'
param staleAfterHours = 25
