"""Where private keys live: one protocol (`base.KeyStore`), several backends."""
