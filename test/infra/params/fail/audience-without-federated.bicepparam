// expect: federationAudience is given but credentialMode is 'secret'
using '../../../../infra/main.bicep'

param defenderClientId = '00000000-0000-0000-0000-000000000001'
param deploymentTime = '2026-12-01T10:00:00Z'
param federationAudience = 'api://AzureADTokenExchange'
