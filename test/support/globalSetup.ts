import { startAzurite, type AzuriteProcess } from '../../src/sandbox/azurite';

declare global {
  var __AZURITE__: AzuriteProcess | undefined;
}

/** One Azurite for the whole test run; workers find it through the environment. */
export default async function globalSetup(): Promise<void> {
  const azurite = await startAzurite();
  globalThis.__AZURITE__ = azurite;
  process.env.AZURITE_CONNECTION_STRING = azurite.connectionString;
}
