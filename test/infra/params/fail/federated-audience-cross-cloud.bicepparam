// expect: federationAudience 'api://AzureADTokenExchangeUSGov' is the usgov cloud's
using '../../../../infra/main.bicep'

param defenderClientId = '00000000-0000-0000-0000-000000000001'
param deploymentTime = '2026-12-01T10:00:00Z'
param credentialMode = 'federated'
param defenderAuthorityHost = 'https://login.microsoftonline.com'
param federationAudience = 'api://AzureADTokenExchangeUSGov'
