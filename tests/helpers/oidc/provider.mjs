// A real OpenID provider on loopback for the tests: panva's oidc-provider with one
// confidential client (PKCE S256 required), a few fixed accounts and minimal sign-in
// pages of its own (the package's dev pages pull a web font from a third party).
//
// Configured from the environment:
//   OIDC_PORT            port to listen on (127.0.0.1)
//   OIDC_ISSUER          default http://127.0.0.1:<port>
//   OIDC_CLIENT_ID       the relying party's client id
//   OIDC_CLIENT_SECRET   its secret (client_secret_basic or client_secret_post)
//   OIDC_REDIRECT_URIS   comma-separated redirect URIs of the client
//   OIDC_PASSWORD        the one password of every test account
//   OIDC_PROVIDER_DIR    a directory with node_modules/oidc-provider
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const env = process.env;
const port = Number(env.OIDC_PORT);
if (!port) throw new Error('OIDC_PORT is required');
const issuer = env.OIDC_ISSUER || `http://127.0.0.1:${port}`;
const password = env.OIDC_PASSWORD || 'oidc-test-password';
const redirectUris = (env.OIDC_REDIRECT_URIS || '').split(',').filter(Boolean);
if (!env.OIDC_CLIENT_ID || !env.OIDC_CLIENT_SECRET || redirectUris.length === 0) {
  throw new Error('OIDC_CLIENT_ID, OIDC_CLIENT_SECRET and OIDC_REDIRECT_URIS are required');
}

// Resolved from the installed directory, not from this file's location.
const require = createRequire(path.join(env.OIDC_PROVIDER_DIR || process.cwd(), 'package.json'));
const { default: Provider } = await import(pathToFileURL(require.resolve('oidc-provider')).href);

const ACCOUNTS = {
  'zob-counsellor': {
    name: 'Zoë Counsellor', email: 'zoe@vt-zob.example', groups: ['vt-zuidoost-brabant'],
  },
  'zob-coordinator': {
    name: 'Coby Coordinator', email: 'coby@vt-zob.example', groups: ['staff', 'vt-zob-coordinators'],
  },
  'national-officer': {
    name: 'Nadia Privacy', email: 'nadia@vt.example', groups: ['vt-privacy'],
  },
  'no-team': {
    name: 'Niels Nergens', email: 'niels@elders.example', groups: [],
  },
};

async function findAccount(ctx, id) {
  const account = ACCOUNTS[id];
  if (!account) return undefined;
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        name: account.name,
        preferred_username: id,
        email: account.email,
        email_verified: true,
        groups: account.groups,
      };
    },
  };
}

// A first-party client: the grant is given at sign-in, no consent page.
async function loadExistingGrant(ctx) {
  const { provider, client, session, params } = ctx.oidc;
  const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ clientId: client.clientId, accountId: session.accountId });
  grant.addOIDCScope(String(params.scope || 'openid'));
  await grant.save();
  return grant;
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: env.OIDC_CLIENT_ID,
    client_secret: env.OIDC_CLIENT_SECRET,
    redirect_uris: redirectUris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  jwks: { keys: [signingKey] },
  findAccount,
  loadExistingGrant,
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username', 'groups'],
    email: ['email', 'email_verified'],
  },
  pkce: { methods: ['S256'], required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: {
    keys: [randomBytes(32).toString('hex')],
    // Plain HTTP on loopback: a browser drops SameSite=None without Secure.
    long: { httpOnly: true, sameSite: 'lax', signed: true },
    short: { httpOnly: true, sameSite: 'lax', signed: true },
  },
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
});
provider.on('server_error', (ctx, error) => console.error('server_error', error));

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(`<!DOCTYPE html><html lang="nl"><head><meta charset="utf-8"><title>Test-IdP</title></head>
<body><main><h1>Inloggen bij de test-IdP</h1>${body}</main></body></html>`);
}

function loginForm(uid, problem) {
  return `${problem ? `<p role="alert">${escapeHtml(problem)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
  <label for="login">Gebruikersnaam</label> <input id="login" name="login" autocomplete="username" required>
  <label for="password">Wachtwoord</label> <input id="password" name="password" type="password" required>
  <button type="submit">Inloggen</button>
</form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort"><button type="submit">Annuleren</button></form>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return page(res, 400, '<p>Onbekende interactie.</p>');
  if (req.method === 'GET') {
    if (details.prompt.name !== 'login') return page(res, 501, `<p>Prompt ${escapeHtml(details.prompt.name)}?</p>`);
    return page(res, 200, loginForm(uid));
  }
  if (req.method === 'POST' && action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const login = form.get('login') || '';
    if (!Object.hasOwn(ACCOUNTS, login) || form.get('password') !== password) {
      return page(res, 200, loginForm(uid, 'Onbekende gebruiker of verkeerd wachtwoord.'));
    }
    return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  }
  return page(res, 405, '<p>Niet toegestaan.</p>');
}

const handleOidc = provider.callback();
const INTERACTION = /^\/interaction\/([\w-]+)(?:\/(login|abort))?$/;

const server = createServer((req, res) => {
  const match = INTERACTION.exec(new URL(req.url, issuer).pathname);
  if (!match) return handleOidc(req, res);
  interaction(req, res, match[1], match[2]).catch((error) => {
    // An expired or unknown interaction: the provider says so, no stack to the browser.
    console.error('interaction_failed', error.name, error.message);
    if (!res.headersSent) page(res, 400, '<p>Deze inlogpoging is verlopen; begin opnieuw.</p>');
  });
});
server.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
