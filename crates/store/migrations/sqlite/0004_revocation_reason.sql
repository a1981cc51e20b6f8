-- Why a revocation check says `unknown` (no-issuer, signature, stale, nonce-missing, nonce-mismatch,
-- responder-error, responder-unknown, not-for-this-certificate, fetch-failed, malformed); NULL for a
-- verified good or revoked.
ALTER TABLE revocation_checks ADD COLUMN unknown_reason TEXT;
-- Answers recorded before this version were not tied to a trust anchor (a CRL read without the
-- issuer's certificate, an issuer trusted by its name or fetched over plain HTTP, a CRL past its
-- nextUpdate): they prove nothing, so they no longer count. `revocation check` asks again.
UPDATE revocation_checks
SET unknown_reason = 'no-issuer',
    detail = 'recorded before answers were verified against a trust anchor (run revocation check again): ' || detail,
    result = 'unknown'
WHERE result IN ('good', 'revoked');
UPDATE revocation_checks SET unknown_reason = 'fetch-failed', result = 'unknown' WHERE result = 'error';
