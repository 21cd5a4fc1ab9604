// Each guard at its limit: the longest run budget, every 15 minutes with the shortest alert window, an unlocked
// WORM policy as long as the deletion, tiers one day apart, a disabled function, Event Grid on.
using '../../../../infra/main.bicep'

param defenderClientId = '00000000-0000-0000-0000-000000000001'
param deploymentTime = '2026-12-01T10:00:00Z'
param namePrefix = 'Ab1'
param exportMaxRunDuration = 'PT25M'
param exportSchedule = '0 */15 * * * *'
param staleAfterHours = 2
param coolAfterDays = 1
param colderAfterDays = 2
param deleteAfterDays = 30
param immutabilityDays = 30
param exportFunctionDisabled = true
param exportEvents = true
