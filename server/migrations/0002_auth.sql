-- Authentication: accounts, login sessions and rotating refresh tokens.
--
-- A session is one login (register or login call). Every credential issued by
-- that login — the session cookie, the access tokens and the refresh-token
-- family — names the session, so revoking the row revokes all of them at once.

CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Stored normalised (trimmed, lower-case); the unique index on lower(email)
    -- keeps uniqueness case-insensitive even if a writer forgets to normalise.
    email text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 60),
    role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    banned_at timestamptz
);

CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- What the login was made for: 'cookie' (a browser page: the request carried
    -- an allowed Origin) or 'token' (a native client). Both credential forms work
    -- on either kind; the column is for operators and session listings.
    kind text NOT NULL CHECK (kind IN ('cookie', 'token')),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    user_agent text CHECK (length(user_agent) <= 512),
    ip inet
);

-- Ban revokes every live session of a user.
CREATE INDEX sessions_user_live_idx ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    -- sha256 of the opaque token: a database leak yields no usable token.
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    -- The family: every token rotated from one login shares its session.
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The family's absolute end: rotation copies it, so a family cannot be
    -- kept alive forever by refreshing.
    expires_at timestamptz NOT NULL,
    spent_at timestamptz,
    replaced_by bytea REFERENCES refresh_tokens (token_hash) ON DELETE SET NULL
);

CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
