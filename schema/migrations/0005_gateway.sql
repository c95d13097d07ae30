-- The platform's RSA key pairs for the Alipay-compatible gateway. The newest
-- row with retired_at = 0 signs; retired keys are kept so an operator can
-- see what was used when. Times are unix nanoseconds.
CREATE TABLE platform_keys (
	key_id      TEXT   PRIMARY KEY,
	private_der TEXT   NOT NULL, -- PKCS#8, base64; never logged
	public_der  TEXT   NOT NULL, -- PKIX, base64: what merchants configure as the "alipay public key"
	created_at  BIGINT NOT NULL,
	retired_at  BIGINT NOT NULL DEFAULT 0
);
