-- 009: what vsm learnt about each deployed or built SHA that the default branch's history did not hold
-- (a release or hotfix branch, an old SHA). Its commits off the default branch go to `commits` and
-- `commit_parents`, so attribution follows true reachability; this table remembers that the SHA was
-- looked up, so it is asked about once.

CREATE TABLE deployed_shas (
    repo        VARCHAR NOT NULL,
    sha         VARCHAR NOT NULL,
    status      VARCHAR NOT NULL,   -- GitHub's comparison with the default branch: ahead, diverged, behind,
                                    -- identical; 'unknown' when GitHub does not know the SHA (404/422)
    ahead_by    INTEGER,            -- commits reachable from the SHA and not from the default branch
    merge_base  VARCHAR,            -- where it left the default branch
    resolved_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repo, sha)
);
