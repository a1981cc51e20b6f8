-- The typed evidence the observation's verdict stands on (bleedwatch-verdict's Evidence as JSON, e.g.
-- {"kind":"honest-heartbeat-echoed"}), from the version that decided the endpoint's verdict. NULL for
-- observations recorded before evidence existed, and for results that carry none.
ALTER TABLE observations ADD COLUMN evidence TEXT;
