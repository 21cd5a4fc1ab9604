// A second azd environment in the same resource group: its own names everywhere, and no browser origins.
using '../../../../infra/main.bicep'

param defenderClientId = '00000000-0000-0000-0000-000000000001'
param deploymentTime = '2026-12-01T10:00:00Z'
param environmentName = 'staging'
param nameSeed = 'staging'
param corsAllowedOrigins = []
