import { CredentialUnavailableError } from '@azure/identity';
import { describeStorageError } from '../../src/sink/blobExportStore';

describe('describeStorageError', () => {
  it('tells an operator without a credential to sign in, or to use a connection string', () => {
    const error = describeStorageError(
      new CredentialUnavailableError('DefaultAzureCredential failed to retrieve a token.\nMore details...'),
      'defender-incidents',
      "read 'state/checkpoint.json'",
    );
    expect(error.message).toBe(
      "Could not get a token for Storage to read 'state/checkpoint.json' in container 'defender-incidents': " +
        "DefaultAzureCredential failed to retrieve a token. Locally, sign in with 'az login' (DefaultAzureCredential) " +
        "or set EXPORT_STORAGE_CONNECTION_STRING; in Azure, check AZURE_CLIENT_ID and the function app's identity.",
    );
  });

  it('keeps other failures as they are, with the action and container', () => {
    expect(describeStorageError(new Error('socket hang up'), 'c1', 'list x').message).toBe(
      "Storage failed to list x in container 'c1': socket hang up",
    );
  });
});
