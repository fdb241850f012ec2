// A real OpenID Connect provider for the OAuth end-to-end test (oidc-provider, dev login form).
// Usage: node provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
// Any login name is accepted; it becomes the subject ("sub") of the account, whose e-mail is
// NAME@example.test, verified, except for a login "unverified-NAME": NAME@example.test, not verified.
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        const unverified = id.startsWith('unverified-');
        const local = unverified ? id.slice('unverified-'.length) : id;
        return { sub: id, email: `${local}@example.test`, email_verified: !unverified, name: `Test user ${id}` };
      },
    };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => false },
  cookies: { keys: ['llmtally-test-only-cookie-key'] },
});

provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider ready at ${issuer}`);
});
