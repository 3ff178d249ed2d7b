-- 008: what each API said about each token's remaining budget at the end of the last run, per resource
-- (GitHub: REST `core`, `graphql` points). `vsm status` shows it; only the variable's NAME is stored.

CREATE TABLE rate_budgets (
    source      VARCHAR NOT NULL,
    token_env   VARCHAR NOT NULL,   -- the environment variable holding the token, never the token
    resource    VARCHAR NOT NULL,   -- core, graphql, ...
    remaining   INTEGER,
    "limit"     INTEGER,
    reset_at    TIMESTAMPTZ,
    observed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, token_env, resource)
);
