/* verify/key.c: ed25519 keys and signatures through OpenSSL's EVP_PKEY_ED25519.
 *
 * A key keeps its raw 32-byte public half and its TUF key id next to the EVP_PKEY, so the id
 * is computed once. Private key files are PEM PKCS#8, public key files PEM SubjectPublicKeyInfo.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "verify/cjson.h"
#include "verify/error.h"
#include "verify/atomic.h"
#include "verify/hash.h"
#include "verify/key.h"

/* Key files are a few hundred bytes; anything much larger is not a key. */
#define KEY_FILE_MAX (64 * 1024)

struct verify_key {
	EVP_PKEY *pkey;
	bool priv;
	uint8_t pub[32];
	char id[VERIFY_KEYID_HEX];
};

void verify_key_free(struct verify_key *key)
{
	if (!key)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

static json_t *key_json(const uint8_t pub[32])
{
	char hex[65];

	verify_hex(pub, 32, hex);
	return json_pack("{s:s, s:{s:s}, s:s}", "keytype", "ed25519", "keyval", "public", hex,
			 "scheme", "ed25519");
}

/* Wrap pkey (taken) into a key, filling the public bytes and the key id. */
static int key_wrap(EVP_PKEY *pkey, bool priv, struct verify_key **ret_key)
{
	struct verify_key *key = NULL;
	uint8_t digest[VERIFY_HASH_LEN];
	size_t publen = sizeof(key->pub), clen = 0;
	char *canon = NULL;
	json_t *j = NULL;
	int r;

	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		stork_errorf("key: not an ed25519 key");
		r = STORK_EUNSUPPORTED;
		goto out;
	}
	key = calloc(1, sizeof(*key));
	if (!key) {
		r = -ENOMEM;
		goto out;
	}
	if (EVP_PKEY_get_raw_public_key(pkey, key->pub, &publen) != 1 || publen != 32) {
		stork_errorf("key: cannot read the ed25519 public key");
		r = STORK_EFORMAT;
		goto out;
	}
	j = key_json(key->pub);
	if (!j) {
		r = -ENOMEM;
		goto out;
	}
	r = verify_cjson_dump(j, &canon, &clen);
	if (r < 0)
		goto out;
	r = verify_sha256(canon, clen, digest);
	if (r < 0)
		goto out;
	verify_hex(digest, sizeof(digest), key->id);
	key->pkey = pkey;
	key->priv = priv;
	pkey = NULL;
	*ret_key = key;
	key = NULL;
out:
	ERR_clear_error();
	free(canon);
	json_decref(j);
	EVP_PKEY_free(pkey);
	free(key);
	return r;
}

int verify_key_generate(struct verify_key **ret_key)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	EVP_PKEY *pkey = NULL;
	int r;

	if (!ctx)
		return -ENOMEM;
	if (EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &pkey) != 1) {
		stork_errorf("key: OpenSSL cannot generate an ed25519 key");
		EVP_PKEY_CTX_free(ctx);
		ERR_clear_error();
		return -EIO;
	}
	EVP_PKEY_CTX_free(ctx);
	r = key_wrap(pkey, true, ret_key);
	return r;
}

int verify_key_from_raw(const uint8_t pub[32], const uint8_t *priv, struct verify_key **ret_key)
{
	EVP_PKEY *pkey;
	uint8_t derived[32];
	size_t dlen = sizeof(derived);

	if (priv) {
		pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, 32);
		if (!pkey)
			goto bad;
		if (EVP_PKEY_get_raw_public_key(pkey, derived, &dlen) != 1 || dlen != 32 ||
		    CRYPTO_memcmp(derived, pub, 32) != 0) {
			EVP_PKEY_free(pkey);
			stork_errorf("key: the public key does not belong to the private key");
			ERR_clear_error();
			return STORK_EFORMAT;
		}
	} else {
		pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
		if (!pkey)
			goto bad;
	}
	return key_wrap(pkey, priv != NULL, ret_key);
bad:
	stork_errorf("key: OpenSSL refuses the raw ed25519 key");
	ERR_clear_error();
	return STORK_EFORMAT;
}

/* Read a whole (small) file. With private set, refuse files group or others can read. */
static int read_key_file(const char *path, bool private, char **ret_buf, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		stork_errorf("%s: cannot open: %s", path, storkfs_strerror(r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		stork_errorf("%s: cannot stat: %s", path, storkfs_strerror(r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = STORK_EFORMAT;
		stork_errorf("%s: not a regular file", path);
		goto out;
	}
	if (st.st_size > KEY_FILE_MAX) {
		r = STORK_EFORMAT;
		stork_errorf("%s: too large for a key file (%lld bytes)", path,
			     (long long)st.st_size);
		goto out;
	}
	buf = malloc(KEY_FILE_MAX + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, KEY_FILE_MAX + 1 - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			stork_errorf("%s: cannot read: %s", path, storkfs_strerror(r));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > KEY_FILE_MAX) {
			r = STORK_EFORMAT;
			stork_errorf("%s: too large for a key file", path);
			goto out;
		}
	}
	buf[len] = '\0';
	/* A .pub file where the private key was asked for: say so, not that its mode is
	 * wrong (a public key is meant to be readable). */
	if (private && strstr(buf, "-----BEGIN PUBLIC KEY-----")) {
		r = STORK_EFORMAT;
		stork_errorf("%s: this is a public key; signing needs the private key (the file "
			     "without .pub that stork keygen wrote next to it)",
			     path);
		goto out;
	}
	if (private && (st.st_mode & 077)) {
		r = -EPERM;
		stork_errorf("%s: private key is readable by group or others (mode %04o); "
			     "run chmod 600 %s",
			     path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	*ret_buf = buf;
	*ret_len = len;
	buf = NULL;
	r = 0;
out:
	if (buf) {
		OPENSSL_cleanse(buf, KEY_FILE_MAX + 1);
		free(buf);
	}
	close(fd);
	return r;
}

static void free_key_file(char *buf, size_t len)
{
	if (!buf)
		return;
	OPENSSL_cleanse(buf, len);
	free(buf);
}

/* Never prompt for a passphrase: encrypted keys are not supported. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static EVP_PKEY *pem_private(const char *buf, size_t len)
{
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	EVP_PKEY *pkey;

	if (!bio)
		return NULL;
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	return pkey;
}

static EVP_PKEY *pem_public(const char *buf, size_t len)
{
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	EVP_PKEY *pkey;

	if (!bio)
		return NULL;
	pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	return pkey;
}

int verify_key_load_private(const char *path, struct verify_key **ret_key)
{
	EVP_PKEY *pkey;
	size_t len = 0;
	char *buf = NULL;
	int r;

	r = read_key_file(path, true, &buf, &len);
	if (r < 0)
		return r;
	pkey = pem_private(buf, len);
	free_key_file(buf, len);
	if (!pkey) {
		ERR_clear_error();
		stork_errorf("%s: not a PEM PKCS#8 private key (unencrypted ed25519 expected)",
			     path);
		return STORK_EFORMAT;
	}
	r = key_wrap(pkey, true, ret_key);
	if (r < 0)
		stork_error_prefix("%s", path);
	return r;
}

int verify_key_load_public(const char *path, struct verify_key **ret_key)
{
	struct verify_key *key = NULL;
	EVP_PKEY *pkey = NULL;
	size_t len = 0, i = 0;
	char *buf = NULL;
	json_t *j = NULL;
	int r;

	r = read_key_file(path, false, &buf, &len);
	if (r < 0)
		return r;
	while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r'))
		i++;
	if (i < len && buf[i] == '{') {
		r = verify_json_parse(buf, len, path, &j);
		if (r < 0)
			goto out;
		r = verify_key_from_json(j, ret_key);
		if (r < 0)
			stork_error_prefix("%s", path);
		goto out;
	}
	pkey = pem_public(buf, len);
	if (!pkey)
		pkey = pem_private(buf, len);
	if (!pkey) {
		r = STORK_EFORMAT;
		stork_errorf("%s: not a PEM public key, PEM private key or TUF key object", path);
		goto out;
	}
	r = key_wrap(pkey, false, &key);
	pkey = NULL;
	if (r < 0) {
		stork_error_prefix("%s", path);
		goto out;
	}
	if (key->priv || EVP_PKEY_get_id(key->pkey) != EVP_PKEY_ED25519)
		goto out;
	/* A private key file gives only its public half here: rebuild from the raw bytes so
	 * the returned key cannot sign. */
	r = verify_key_from_raw(key->pub, NULL, ret_key);
out:
	ERR_clear_error();
	verify_key_free(key);
	json_decref(j);
	free_key_file(buf, len);
	return r;
}

/* Create path with O_EXCL and write the PEM in bio to it. */
static int write_new_file(const char *path, BIO *bio, mode_t mode)
{
	char *data = NULL;
	long dlen = BIO_get_mem_data(bio, &data);
	int fd, r;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		r = -errno;
		if (r == -EEXIST)
			stork_errorf("%s: already exists; refusing to overwrite a key", path);
		else
			stork_errorf("%s: cannot create: %s", path, storkfs_strerror(r));
		return r;
	}
	if (fchmod(fd, mode) < 0) {
		r = -errno;
		goto fail;
	}
	r = verify_write_all(fd, data, dlen > 0 ? (size_t)dlen : 0);
	if (r < 0)
		goto fail;
	if (fsync(fd) < 0) {
		r = -errno;
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto fail;
	}
	return 0;
fail:
	stork_errorf("%s: cannot write: %s", path, storkfs_strerror(r));
	if (fd >= 0)
		close(fd);
	unlink(path);
	return r;
}

static void sync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	int fd;

	if (!slash) {
		dir[0] = '.';
		dir[1] = '\0';
	} else if ((size_t)(slash - path) + 2 > sizeof(dir)) {
		return;
	} else {
		memcpy(dir, path, (size_t)(slash - path) + 1);
		dir[slash - path + 1] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int verify_key_save(const struct verify_key *key, const char *path)
{
	BIO *priv = NULL, *pub = NULL;
	char *pubpath = NULL;
	bool made_priv = false;
	int r;

	if (!key->priv) {
		stork_errorf("%s: the key has no private half to save", path);
		return -EINVAL;
	}
	if (asprintf(&pubpath, "%s.pub", path) < 0) {
		pubpath = NULL;
		r = -ENOMEM;
		goto out;
	}
	priv = BIO_new(BIO_s_mem());
	pub = BIO_new(BIO_s_mem());
	if (!priv || !pub) {
		r = -ENOMEM;
		goto out;
	}
	/* PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY"), unencrypted. */
	if (PEM_write_bio_PrivateKey(priv, key->pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_PUBKEY(pub, key->pkey) != 1) {
		stork_errorf("%s: OpenSSL cannot encode the key", path);
		r = -EIO;
		goto out;
	}
	r = write_new_file(path, priv, 0600);
	if (r < 0)
		goto out;
	made_priv = true;
	r = write_new_file(pubpath, pub, 0644);
	if (r < 0)
		goto out;
	sync_parent(path);
	made_priv = false;
	r = 0;
out:
	if (made_priv)
		unlink(path);
	ERR_clear_error();
	if (priv) {
		/* The memory BIO held the private key in clear. */
		char *data = NULL;
		long dlen = BIO_get_mem_data(priv, &data);

		if (data && dlen > 0)
			OPENSSL_cleanse(data, (size_t)dlen);
		BIO_free(priv);
	}
	BIO_free(pub);
	free(pubpath);
	return r;
}

json_t *verify_key_to_json(const struct verify_key *key)
{
	return key_json(key->pub);
}

static int field_error(const char *field, const char *problem)
{
	stork_errorf("key: field \"%s\": %s", field, problem);
	return STORK_EFORMAT;
}

int verify_key_from_json(const json_t *obj, struct verify_key **ret_key)
{
	const json_t *keytype, *scheme, *keyval, *public;
	const char *k, *hex;
	uint8_t raw[32];
	json_t *v;
	size_t i;

	if (!json_is_object(obj)) {
		stork_errorf("key: not a JSON object");
		return STORK_EFORMAT;
	}
	/* The key id is the hash of exactly {keytype, keyval{public}, scheme}: a key object
	 * with more fields would have another id elsewhere, so it is refused. */
	json_object_foreach((json_t *)obj, k, v)
	{
		if (strcmp(k, "keytype") != 0 && strcmp(k, "scheme") != 0 &&
		    strcmp(k, "keyval") != 0)
			return field_error(k, "unknown field in a key object");
	}
	keytype = json_object_get(obj, "keytype");
	scheme = json_object_get(obj, "scheme");
	keyval = json_object_get(obj, "keyval");
	if (!keytype)
		return field_error("keytype", "missing");
	if (!json_is_string(keytype))
		return field_error("keytype", "not a string");
	if (strcmp(json_string_value(keytype), "ed25519") != 0) {
		stork_errorf("key: keytype \"%.64s\" is not supported (only ed25519)",
			     json_string_value(keytype));
		return STORK_EUNSUPPORTED;
	}
	if (!scheme)
		return field_error("scheme", "missing");
	if (!json_is_string(scheme))
		return field_error("scheme", "not a string");
	if (strcmp(json_string_value(scheme), "ed25519") != 0) {
		stork_errorf("key: scheme \"%.64s\" is not supported (only ed25519)",
			     json_string_value(scheme));
		return STORK_EUNSUPPORTED;
	}
	if (!keyval)
		return field_error("keyval", "missing");
	if (!json_is_object(keyval))
		return field_error("keyval", "not an object");
	json_object_foreach((json_t *)keyval, k, v)
	{
		if (strcmp(k, "public") != 0)
			return field_error("keyval", "only \"public\" is allowed in keyval");
	}
	public = json_object_get(keyval, "public");
	if (!public)
		return field_error("keyval.public", "missing");
	if (!json_is_string(public))
		return field_error("keyval.public", "not a string");
	hex = json_string_value(public);
	for (i = 0; hex[i]; i++)
		if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
			break;
	if (i != 64 || hex[i] != '\0' || verify_unhex(hex, raw, sizeof(raw)) < 0)
		return field_error("keyval.public", "not 64 lower-case hex digits");
	return verify_key_from_raw(raw, NULL, ret_key);
}

const char *verify_key_id(const struct verify_key *key)
{
	return key->id;
}

bool verify_key_is_private(const struct verify_key *key)
{
	return key->priv;
}

int verify_key_sign(const struct verify_key *key, const void *msg, size_t len,
		    uint8_t ret_sig[VERIFY_SIG_LEN])
{
	EVP_MD_CTX *ctx;
	uint8_t sig[VERIFY_SIG_LEN];
	size_t siglen = sizeof(sig);
	int r = 0;

	if (!key->priv) {
		stork_errorf("key %.16s: public key only, cannot sign", key->id);
		return -EINVAL;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	/* ed25519 hashes internally: no digest, one-shot EVP_DigestSign. */
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, len ? msg : (const void *)"", len) != 1 ||
	    siglen != VERIFY_SIG_LEN) {
		stork_errorf("key %.16s: OpenSSL cannot sign", key->id);
		r = -EIO;
	} else {
		memcpy(ret_sig, sig, VERIFY_SIG_LEN);
	}
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return r;
}

int verify_key_check(const struct verify_key *key, const void *msg, size_t len,
		     const uint8_t sig[VERIFY_SIG_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (!ctx) {
		stork_errorf("key %.16s: out of memory checking a signature", key->id);
		return STORK_EBADSIG;
	}
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key->pkey) == 1 &&
	     EVP_DigestVerify(ctx, sig, VERIFY_SIG_LEN, len ? msg : (const void *)"", len) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	if (!ok) {
		stork_errorf("key %.16s: signature does not verify", key->id);
		return STORK_EBADSIG;
	}
	return 0;
}
