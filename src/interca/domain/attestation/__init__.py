"""Key attestation of HSM keys (hsm.md §8): the statement's ASN.1 claims, the certificates that
carry them (manufacturer root, attestation key, attestation statement) and their verification.

Pure: the attestor process reads the token and hands the attributes in; the service and the
offline CLI verify bundles. SoftHSM2 attestation is an emulation (hsm.md §8.8) and every name,
comment and message here says so.
"""
