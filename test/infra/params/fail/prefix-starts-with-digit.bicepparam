// expect: namePrefix '1dix' must be 2-10 letters and digits, starting with a letter
using '../../../../infra/main.bicep'

param defenderClientId = '00000000-0000-0000-0000-000000000001'
param deploymentTime = '2026-12-01T10:00:00Z'
param namePrefix = '1dix'
