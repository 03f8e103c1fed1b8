/* tests/unit/test_verify.c: the verify suite. Errors, hashes, ed25519, canonical JSON, names and
 * manifests are tested here; TUF metadata and the repository writer in test_verify_meta.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <check.h>

#include "tests/unit/unit.h"
#include "verify/cjson.h"
#include "verify/verify.h"

/* Until test_verify_meta.c defines them, these keep the executable linking. */
__attribute__((weak)) TCase *tcase_verify_meta(void)
{
	return tcase_create("meta");
}

__attribute__((weak)) TCase *tcase_verify_repo(void)
{
	return tcase_create("repo");
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers. */

static char *tmpdir_new(void)
{
	char *d = strdup("/tmp/stork-test-verify-XXXXXX");

	ck_assert_ptr_nonnull(d);
	ck_assert_ptr_nonnull(mkdtemp(d));
	return d;
}

/* Remove the files named (relative to dir), then dir, then free it. */
static void tmpdir_free(char *dir, const char *const *names)
{
	char path[4096];

	for (; names && *names; names++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *names);
		if (unlink(path) < 0 && errno == EISDIR)
			rmdir(path);
	}
	ck_assert_int_eq(rmdir(dir), 0);
	free(dir);
}

static char *path_in(const char *dir, const char *name)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static char *read_text(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static void unhex_ok(const char *hex, uint8_t *out, size_t len)
{
	ck_assert_int_eq(verify_unhex(hex, out, len), 0);
}

/* Canonical JSON of j as a string (caller frees); j is released. */
static char *cjson(json_t *j)
{
	char *buf = NULL;
	size_t len = 0;

	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(verify_cjson_dump(j, &buf, &len), 0);
	ck_assert_uint_eq(strlen(buf), len);
	json_decref(j);
	return buf;
}

static json_t *parse_ok(const char *text)
{
	json_t *j = NULL;

	ck_assert_int_eq(verify_json_parse(text, strlen(text), "test", &j), 0);
	return j;
}

/* ------------------------------------------------------------------------------------------ */
/* Errors. */

START_TEST(strerror_names_every_stork_code_and_errno)
{
	int codes[] = {STORK_EBADSIG,	  STORK_EEXPIRED, STORK_EROLLBACK, STORK_EBADHASH,
		       STORK_EBADLEN,	  STORK_EFORMAT,  STORK_EPATTERN,  STORK_EHOSTILE,
		       STORK_ENAME,	  STORK_ETOOBIG,  STORK_EMISSING,  STORK_EVERSION,
		       STORK_EUNSUPPORTED};
	size_t i, k, n = sizeof(codes) / sizeof(codes[0]);

	for (i = 0; i < n; i++) {
		const char *s = storkfs_strerror(codes[i]);

		ck_assert_ptr_nonnull(s);
		ck_assert_ptr_null(strstr(s, "unknown"));
		for (k = 0; k < i; k++)
			ck_assert_str_ne(s, storkfs_strerror(codes[k]));
	}
	ck_assert_str_eq(storkfs_strerror(-ENOENT), "No such file or directory");
	ck_assert_str_eq(storkfs_strerror(-EPERM), "Operation not permitted");
	ck_assert_ptr_nonnull(strstr(storkfs_strerror(-29999), "-29999"));
}
END_TEST

START_TEST(error_detail_is_set_prefixed_and_cleared)
{
	stork_error_clear();
	ck_assert_str_eq(stork_error_detail(), "");
	stork_errorf("entry \"%s\": %s", "a/b", "bad");
	ck_assert_str_eq(stork_error_detail(), "entry \"a/b\": bad");
	stork_error_prefix("%s", "targets/x.json");
	ck_assert_str_eq(stork_error_detail(), "targets/x.json: entry \"a/b\": bad");
	stork_error_prefix("publish: ");
	ck_assert_str_eq(stork_error_detail(), "publish: targets/x.json: entry \"a/b\": bad");
	/* Arguments may point into the detail itself. */
	stork_errorf("again: %s", stork_error_detail());
	ck_assert_str_eq(stork_error_detail(),
			 "again: publish: targets/x.json: entry \"a/b\": bad");
	stork_error_clear();
	ck_assert_str_eq(stork_error_detail(), "");
	stork_error_prefix("only");
	ck_assert_str_eq(stork_error_detail(), "only");
}
END_TEST

START_TEST(error_text_says_the_error_once)
{
	char buf[256];

	ck_assert_str_eq(
	    stork_error_text("store/tmp/x: No space left on device", -ENOSPC, buf, sizeof(buf)),
	    "store/tmp/x: No space left on device");
	ck_assert_str_eq(
	    stork_error_text("objects/ab/cd: hash mismatch", STORK_EBADHASH, buf, sizeof(buf)),
	    "objects/ab/cd: hash mismatch (content does not match its signed hash)");
	ck_assert_str_eq(stork_error_text("", -EACCES, buf, sizeof(buf)), "Permission denied");
	stork_errorf("x: Permission denied");
	ck_assert_str_eq(stork_error_text(NULL, -EACCES, buf, sizeof(buf)), "x: Permission denied");
}
END_TEST

START_TEST(bidi_controls_are_found_and_named)
{
	size_t at = 99;

	ck_assert_ptr_null(verify_bidi_control("usr/bin/h\xc3\xa9llo", &at));
	ck_assert_str_eq(verify_bidi_control("ab\xe2\x80\xaexe", &at),
			 "U+202E RIGHT-TO-LEFT OVERRIDE");
	ck_assert_uint_eq(at, 2);
	ck_assert_str_eq(verify_bidi_control("\xe2\x81\xa9", &at),
			 "U+2069 POP DIRECTIONAL ISOLATE");
	ck_assert_ptr_null(verify_bidi_control("\xe2\x80\xaf\xe2\x81\xaa", &at)); /* 202F, 206A */
	ck_assert_int_eq(verify_check_package_name("evil\xe2\x80\xaegpj"), STORK_ENAME);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "U+202E"));
	ck_assert_ptr_null(strstr(stork_error_detail(), "\xe2\x80\xae"));
}
END_TEST

START_TEST(sizes_read_as_text)
{
	char out[32];

	verify_size_text(0, "B", out, sizeof(out));
	ck_assert_str_eq(out, "0 B");
	verify_size_text(1023, "bytes", out, sizeof(out));
	ck_assert_str_eq(out, "1023 bytes");
	verify_size_text(1536, "B", out, sizeof(out));
	ck_assert_str_eq(out, "1.5 KiB");
	verify_size_text(5ULL << 30, "B", out, sizeof(out));
	ck_assert_str_eq(out, "5.0 GiB");
	verify_size_text(UINT64_MAX, "B", out, sizeof(out)); /* TiB is the largest unit */
	ck_assert_str_eq(out, "16777216.0 TiB");
}
END_TEST

START_TEST(publish_refuses_versions_dpkg_refuses)
{
	static const char *const bad[] = {"a:b:c",	  "1:",	  ":1",	 "99999999999:1",
					  "2147483648:1", "1:-2", "1.0-"};
	static const char *const good[] = {"2147483647:1", "1:b:c", "0:1.0-1", "1.0~rc1+b2",
					   "2.10-3"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(verify_check_version_publish(bad[i]), STORK_ENAME);
	/* Reading stays as it was: a repository that signs one is still read. */
	ck_assert_int_eq(verify_check_version("1.0-"), 0);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_int_eq(verify_check_version_publish(good[i]), 0);
}
END_TEST

START_TEST(error_detail_truncates_at_16k_without_splitting_utf8)
{
	static char big[20000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	stork_errorf("%s", big);
	ck_assert_uint_eq(strlen(stork_error_detail()), 16383);
	stork_error_prefix("%s", big);
	ck_assert_uint_eq(strlen(stork_error_detail()), 16383);
	/* 16382 bytes then a 2-byte character: the half character is dropped. */
	memset(big, 'y', 16382);
	memcpy(big + 16382, "\xc3\xa9", 3);
	stork_errorf("%s", big);
	ck_assert_uint_eq(strlen(stork_error_detail()), 16382);
	stork_error_clear();
}
END_TEST

/* Issue 11, item 9: a message about a path of 4095 bytes (the longest a package may hold),
 * prefixed with the package and the destination (another long path), still ends with what
 * went wrong. */
START_TEST(error_detail_keeps_the_problem_after_two_long_paths)
{
	static char path[4096], dest[4096];
	const char *d;
	size_t n;

	memset(path, 'p', sizeof(path) - 1);
	memset(dest, 'd', sizeof(dest) - 1);
	stork_errorf("cannot link to %s: %s", dest, "Operation not permitted");
	stork_error_prefix("hello 2.10-3: %s: ", path);
	d = stork_error_detail();
	n = strlen(d);
	ck_assert_uint_gt(n, 8192);
	ck_assert_str_eq(d + n - strlen("Operation not permitted"), "Operation not permitted");
	stork_error_clear();
}
END_TEST

START_TEST(write_atomic_writes_whole_file_with_exact_mode)
{
	char *dir = tmpdir_new(), *p = path_in(dir, "f.json"), *sub = path_in(dir, "sub");
	const char *names[] = {"f.json", "sub/g", "sub", NULL};
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	mode_t old = umask(077);
	struct stat st;

	ck_assert_int_ge(dfd, 0);
	ck_assert_int_eq(verify_write_atomic(dfd, "f.json", "one", 3, 0644), 0);
	ck_assert_str_eq(read_text(p), "one");
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0644);
	ck_assert_int_eq(verify_write_atomic(dfd, "f.json", "two!", 4, 0444), 0);
	ck_assert_str_eq(read_text(p), "two!");
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0444);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	ck_assert_int_eq(verify_write_atomic(dfd, "sub/g", "", 0, 0600), 0);
	ck_assert_int_eq(verify_write_atomic(dfd, "nodir/g", "x", 1, 0600), -ENOENT);
	umask(old);
	ck_assert_str_eq(read_text(p), "two!");
	close(dfd);
	free(p);
	free(sub);
	/* rmdir in tmpdir_free fails if a temporary file was left behind. */
	tmpdir_free(dir, names);
}
END_TEST

/* The one write loop of verify/, store/ and their writers (keys, repository objects). */
START_TEST(write_all_writes_everything_or_says_why)
{
	static const char *const names[] = {"f", NULL};
	char *dir = tmpdir_new(), *p = path_in(dir, "f");
	size_t len = 3 * 1024 * 1024 + 7;
	char *buf = malloc(len), *back = malloc(len);
	int fd;

	ck_assert_ptr_nonnull(buf);
	ck_assert_ptr_nonnull(back);
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(i * 7 + i / 4096);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(verify_write_all(fd, buf, len), 0);
	ck_assert_int_eq(verify_write_all(fd, buf, 0), 0);
	close(fd);
	fd = open(p, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, back, len), (ssize_t)len);
	ck_assert_int_eq(memcmp(buf, back, len), 0);
	ck_assert_int_eq(verify_write_all(fd, buf, 1), -EBADF); /* opened for reading */
	close(fd);
	free(buf);
	free(back);
	free(p);
	tmpdir_free(dir, names);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Hashes. */

static void sha256_hex(const void *buf, size_t len, char *out)
{
	uint8_t d[VERIFY_HASH_LEN];

	ck_assert_int_eq(verify_sha256(buf, len, d), 0);
	verify_hex(d, sizeof(d), out);
}

START_TEST(sha256_matches_fips_vectors)
{
	static const char two_blocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	char hex[VERIFY_HASH_HEX];

	sha256_hex("", 0, hex);
	ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha256_hex(NULL, 0, hex);
	ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha256_hex("abc", 3, hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha256_hex(two_blocks, strlen(two_blocks), hex);
	ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

START_TEST(sha256_streaming_equals_one_shot)
{
	static const char two_blocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	uint8_t d[VERIFY_HASH_LEN];
	char hex[VERIFY_HASH_HEX];
	struct verify_hash *h = NULL;
	size_t i;

	ck_assert_int_eq(verify_hash_new(&h), 0);
	for (i = 0; i < strlen(two_blocks); i++)
		ck_assert_int_eq(verify_hash_update(h, two_blocks + i, 1), 0);
	ck_assert_int_eq(verify_hash_update(h, NULL, 0), 0);
	ck_assert_int_eq(verify_hash_final(h, d), 0);
	verify_hash_free(h);
	verify_hash_free(NULL);
	verify_hex(d, sizeof(d), hex);
	ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

START_TEST(unhex_accepts_exact_hex_only)
{
	uint8_t out[3] = {0xee, 0xee, 0xee};
	char hex[7];

	ck_assert_int_eq(verify_unhex("00fFa9", out, 3), 0);
	ck_assert_uint_eq(out[0], 0x00);
	ck_assert_uint_eq(out[1], 0xff);
	ck_assert_uint_eq(out[2], 0xa9);
	verify_hex(out, 3, hex);
	ck_assert_str_eq(hex, "00ffa9");
	ck_assert_int_eq(verify_unhex("00ffa", out, 3), STORK_EFORMAT);
	ck_assert_int_eq(verify_unhex("00ffa90", out, 3), STORK_EFORMAT);
	ck_assert_int_eq(verify_unhex("00ffg9", out, 3), STORK_EFORMAT);
	ck_assert_int_eq(verify_unhex(" 0ffa9", out, 3), STORK_EFORMAT);
	ck_assert_int_eq(verify_unhex("", out, 3), STORK_EFORMAT);
	/* Nothing is written on failure. */
	ck_assert_uint_eq(out[1], 0xff);
}
END_TEST
static const char rfc_test1024_msg[] =
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98"
    "fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d8"
    "79de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
    "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc"
    "1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4fe"
    "ba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
    "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbef"
    "efd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7"
    "aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
    "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2"
    "d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24"
    "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
    "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc"
    "2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b07"
    "07e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
    "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51a"
    "ddd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429e"
    "c96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
    "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c"
    "42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8"
    "ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
    "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08"
    "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649"
    "de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
    "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a3"
    "2ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e"
    "6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
    "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b5"
    "0d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1"
    "369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
    "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c"
    "0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0";

/* RFC 8032 section 7.1. */
static const struct rfc_vector {
	const char *name, *secret, *public, *msg, *sig;
} rfc_vectors[] = {
    {"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"TEST 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
    {"TEST 1024", "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
     "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e", rfc_test1024_msg,
     "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350"
     "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03"},
    {"TEST SHA(abc)", "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
     "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
     "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"},
};

START_TEST(ed25519_signs_and_checks_rfc8032_vectors)
{
	const struct rfc_vector *v = &rfc_vectors[_i];
	uint8_t seed[32], pub[32], want[VERIFY_SIG_LEN], sig[VERIFY_SIG_LEN], bad[VERIFY_SIG_LEN];
	size_t mlen = strlen(v->msg) / 2;
	uint8_t *msg = malloc(mlen + 1);
	struct verify_key *priv = NULL, *pubkey = NULL;
	size_t bit;

	ck_assert_ptr_nonnull(msg);
	unhex_ok(v->secret, seed, 32);
	unhex_ok(v->public, pub, 32);
	unhex_ok(v->sig, want, VERIFY_SIG_LEN);
	unhex_ok(v->msg, msg, mlen);
	ck_assert_msg(v->name[0] == 'T', "vector name");
	if (_i == 3)
		ck_assert_uint_eq(mlen, 1023);

	ck_assert_int_eq(verify_key_from_raw(pub, seed, &priv), 0);
	ck_assert(verify_key_is_private(priv));
	ck_assert_int_eq(verify_key_sign(priv, msg, mlen, sig), 0);
	ck_assert_mem_eq(sig, want, VERIFY_SIG_LEN);

	ck_assert_int_eq(verify_key_from_raw(pub, NULL, &pubkey), 0);
	ck_assert(!verify_key_is_private(pubkey));
	ck_assert_str_eq(verify_key_id(pubkey), verify_key_id(priv));
	ck_assert_int_eq(verify_key_check(pubkey, msg, mlen, want), 0);
	ck_assert_int_eq(verify_key_check(priv, msg, mlen, want), 0);
	ck_assert_int_eq(verify_key_sign(pubkey, msg, mlen, sig), -EINVAL);

	/* Any flipped bit of the signature is refused (a sample across R and S). */
	for (bit = 0; bit < 8 * VERIFY_SIG_LEN; bit += 37) {
		memcpy(bad, want, sizeof(bad));
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ck_assert_int_eq(verify_key_check(pubkey, msg, mlen, bad), STORK_EBADSIG);
	}
	/* So is a changed message. */
	if (mlen > 0) {
		msg[mlen - 1] ^= 1;
		ck_assert_int_eq(verify_key_check(pubkey, msg, mlen, want), STORK_EBADSIG);
	} else {
		ck_assert_int_eq(verify_key_check(pubkey, "x", 1, want), STORK_EBADSIG);
	}
	verify_key_free(priv);
	verify_key_free(pubkey);
	free(msg);
}
END_TEST

START_TEST(ed25519_wrong_key_does_not_verify)
{
	uint8_t pub[32], sig[VERIFY_SIG_LEN];
	struct verify_key *k = NULL;

	unhex_ok(rfc_vectors[1].public, pub, 32);
	unhex_ok(rfc_vectors[0].sig, sig, VERIFY_SIG_LEN);
	ck_assert_int_eq(verify_key_from_raw(pub, NULL, &k), 0);
	ck_assert_int_eq(verify_key_check(k, "", 0, sig), STORK_EBADSIG);
	verify_key_free(k);
	verify_key_free(NULL);
}
END_TEST

START_TEST(key_from_raw_refuses_mismatched_public_half)
{
	uint8_t seed[32], pub[32];
	struct verify_key *k = NULL;

	unhex_ok(rfc_vectors[0].secret, seed, 32);
	unhex_ok(rfc_vectors[1].public, pub, 32);
	ck_assert_int_eq(verify_key_from_raw(pub, seed, &k), STORK_EFORMAT);
	ck_assert_ptr_null(k);
}
END_TEST

START_TEST(key_id_is_sha256_of_canonical_tuf_key_object)
{
	uint8_t pub[32];
	struct verify_key *k = NULL, *k2 = NULL;
	json_t *j;
	char *text;

	unhex_ok(rfc_vectors[0].public, pub, 32);
	ck_assert_int_eq(verify_key_from_raw(pub, NULL, &k), 0);
	/* Computed independently: sha256 of the canonical key object's bytes. */
	ck_assert_str_eq(verify_key_id(k),
			 "74c181c7ad8a0855d4b55e44d2ba87aabdddb196832571f15f92fece332e4916");
	j = verify_key_to_json(k);
	ck_assert_int_eq(verify_key_from_json(j, &k2), 0);
	ck_assert_str_eq(verify_key_id(k2), verify_key_id(k));
	text = cjson(j);
	ck_assert_str_eq(text,
			 "{\"keytype\":\"ed25519\",\"keyval\":{\"public\":"
			 "\"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\"},"
			 "\"scheme\":\"ed25519\"}");
	free(text);
	verify_key_free(k);
	verify_key_free(k2);
	unhex_ok(rfc_vectors[1].public, pub, 32);
	ck_assert_int_eq(verify_key_from_raw(pub, NULL, &k), 0);
	ck_assert_str_eq(verify_key_id(k),
			 "eaf1e23f6c823132f437a2eaa299a7950f7386631deff273db195bbd26209e2b");
	verify_key_free(k);
}
END_TEST

START_TEST(key_save_and_load_round_trip)
{
	const char *names[] = {"k", "k.pub", NULL};
	char *dir = tmpdir_new(), *kp = path_in(dir, "k"), *pp = path_in(dir, "k.pub");
	struct verify_key *k = NULL, *priv = NULL, *pub = NULL, *pub2 = NULL;
	uint8_t sig[VERIFY_SIG_LEN];
	struct stat st;

	ck_assert_int_eq(verify_key_generate(&k), 0);
	ck_assert(verify_key_is_private(k));
	ck_assert_uint_eq(strlen(verify_key_id(k)), 64);
	ck_assert_int_eq(verify_key_save(k, kp), 0);
	ck_assert_int_eq(stat(kp, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(stat(pp, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0644);
	ck_assert_ptr_nonnull(strstr(read_text(kp), "-----BEGIN PRIVATE KEY-----"));
	ck_assert_ptr_nonnull(strstr(read_text(pp), "-----BEGIN PUBLIC KEY-----"));

	ck_assert_int_eq(verify_key_load_private(kp, &priv), 0);
	ck_assert(verify_key_is_private(priv));
	ck_assert_str_eq(verify_key_id(priv), verify_key_id(k));
	ck_assert_int_eq(verify_key_load_public(pp, &pub), 0);
	ck_assert(!verify_key_is_private(pub));
	ck_assert_str_eq(verify_key_id(pub), verify_key_id(k));
	/* A private key file gives its public half only. */
	ck_assert_int_eq(verify_key_load_public(kp, &pub2), 0);
	ck_assert(!verify_key_is_private(pub2));
	ck_assert_str_eq(verify_key_id(pub2), verify_key_id(k));

	ck_assert_int_eq(verify_key_sign(priv, "hello", 5, sig), 0);
	ck_assert_int_eq(verify_key_check(pub, "hello", 5, sig), 0);
	ck_assert_int_eq(verify_key_check(k, "hello", 5, sig), 0);

	/* Never overwrites, and a public key has nothing to save. */
	ck_assert_int_eq(verify_key_save(k, kp), -EEXIST);
	ck_assert_int_eq(verify_key_save(pub, kp), -EINVAL);
	/* An existing .pub refuses the save and leaves no private key file behind. */
	ck_assert_int_eq(unlink(kp), 0);
	ck_assert_int_eq(verify_key_save(k, kp), -EEXIST);
	ck_assert_int_eq(access(kp, F_OK), -1);
	ck_assert_int_eq(errno, ENOENT);
	verify_key_free(priv);
	verify_key_free(k);
	verify_key_free(pub);
	verify_key_free(pub2);
	free(kp);
	free(pp);
	tmpdir_free(dir, names);
}
END_TEST

START_TEST(key_load_private_refuses_group_readable_file)
{
	const char *names[] = {"k", "k.pub", NULL};
	char *dir = tmpdir_new(), *kp = path_in(dir, "k");
	struct verify_key *k = NULL, *loaded = NULL;
	char want[4200];

	ck_assert_int_eq(verify_key_generate(&k), 0);
	ck_assert_int_eq(verify_key_save(k, kp), 0);
	ck_assert_int_eq(chmod(kp, 0644), 0);
	ck_assert_int_eq(verify_key_load_private(kp, &loaded), -EPERM);
	ck_assert_ptr_null(loaded);
	snprintf(want, sizeof(want), "chmod 600 %s", kp);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), want));
	ck_assert_int_eq(chmod(kp, 0640), 0);
	ck_assert_int_eq(verify_key_load_private(kp, &loaded), -EPERM);
	ck_assert_int_eq(chmod(kp, 0400), 0);
	ck_assert_int_eq(verify_key_load_private(kp, &loaded), 0);
	verify_key_free(loaded);
	verify_key_free(k);
	free(kp);
	tmpdir_free(dir, names);
}
END_TEST

START_TEST(key_load_public_reads_tuf_json_key)
{
	const char *names[] = {"k.json", "bad.json", "garbage", NULL};
	char *dir = tmpdir_new(), *jp = path_in(dir, "k.json"), *bp = path_in(dir, "bad.json");
	char *gp = path_in(dir, "garbage"), *missing = path_in(dir, "missing");
	struct verify_key *k = NULL;

	write_file(
	    jp,
	    "{\n  \"keytype\": \"ed25519\", \"scheme\": \"ed25519\",\n  \"keyval\": "
	    "{\"public\": \"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\"}"
	    "}\n",
	    0644);
	ck_assert_int_eq(verify_key_load_public(jp, &k), 0);
	ck_assert_str_eq(verify_key_id(k),
			 "74c181c7ad8a0855d4b55e44d2ba87aabdddb196832571f15f92fece332e4916");
	ck_assert(!verify_key_is_private(k));
	verify_key_free(k);
	k = NULL;
	write_file(bp, "{\"keytype\":\"rsa\",\"scheme\":\"rsassa-pss-sha256\",\"keyval\":{}}",
		   0644);
	ck_assert_int_eq(verify_key_load_public(bp, &k), STORK_EUNSUPPORTED);
	write_file(gp, "-----BEGIN PUBLIC KEY-----\nnot base64 at all\n", 0644);
	ck_assert_int_eq(verify_key_load_public(gp, &k), STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), gp));
	/* A public key given for a private one says so, whatever its mode. */
	ck_assert_int_eq(verify_key_load_private(gp, &k), STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "this is a public key"));
	ck_assert_int_eq(chmod(gp, 0600), 0);
	ck_assert_int_eq(verify_key_load_private(gp, &k), STORK_EFORMAT);
	ck_assert_int_eq(verify_key_load_public(missing, &k), -ENOENT);
	ck_assert_ptr_null(k);
	free(jp);
	free(bp);
	free(gp);
	free(missing);
	tmpdir_free(dir, names);
}
END_TEST

static int key_json_code(const char *text)
{
	struct verify_key *k = NULL;
	json_t *j = parse_ok(text);
	int r = verify_key_from_json(j, &k);

	json_decref(j);
	verify_key_free(k);
	if (r < 0)
		ck_assert_ptr_null(k);
	return r;
}

START_TEST(key_from_json_checks_every_field)
{
#define PUB "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	ck_assert_int_eq(key_json_code("{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\","
				       "\"keyval\":{\"public\":\"" PUB "\"}}"),
			 0);
	ck_assert_int_eq(
	    key_json_code("{\"scheme\":\"ed25519\",\"keyval\":{\"public\":\"" PUB "\"}}"),
	    STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "keytype"));
	ck_assert_int_eq(
	    key_json_code("{\"keytype\":\"ed25519\",\"keyval\":{\"public\":\"" PUB "\"}}"),
	    STORK_EFORMAT);
	ck_assert_int_eq(key_json_code("{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\"}"),
			 STORK_EFORMAT);
	ck_assert_int_eq(key_json_code("{\"keytype\":\"ecdsa\",\"scheme\":\"ed25519\","
				       "\"keyval\":{\"public\":\"" PUB "\"}}"),
			 STORK_EUNSUPPORTED);
	ck_assert_int_eq(
	    key_json_code("{\"keytype\":\"ed25519\",\"scheme\":\"ecdsa-sha2-nistp256\","
			  "\"keyval\":{\"public\":\"" PUB "\"}}"),
	    STORK_EUNSUPPORTED);
	ck_assert_int_eq(
	    key_json_code("{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\","
			  "\"keyval\":{\"public\":\"D75A980182B10AB7D54BFED3C964073A0EE1"
			  "72F3DAA62325AF021A68F707511A\"}}"),
	    STORK_EFORMAT);
	ck_assert_int_eq(key_json_code("{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\","
				       "\"keyval\":{\"public\":\"d75a98\"}}"),
			 STORK_EFORMAT);
	ck_assert_int_eq(key_json_code("{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\","
				       "\"keyval\":{\"public\":5}}"),
			 STORK_EFORMAT);
	ck_assert_int_eq(key_json_code("{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\","
				       "\"keyval\":{\"public\":\"" PUB "\",\"private\":\"00\"}}"),
			 STORK_EFORMAT);
	ck_assert_int_eq(key_json_code("{\"keytype\":\"ed25519\",\"scheme\":\"ed25519\","
				       "\"keyid_hash_algorithms\":[\"sha256\"],"
				       "\"keyval\":{\"public\":\"" PUB "\"}}"),
			 STORK_EFORMAT);
	ck_assert_int_eq(key_json_code("[1]"), STORK_EFORMAT);
#undef PUB
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Canonical JSON. */

START_TEST(cjson_escapes_only_quote_and_backslash)
{
	char *s;

	/* Control characters, '/', DEL and non-ASCII go out as they are. */
	s = cjson(json_string("a\"b\\c\n\t\x01/\x7f\xc3\xa9"));
	ck_assert_str_eq(s, "\"a\\\"b\\\\c\n\t\x01/\x7f\xc3\xa9\"");
	free(s);
	s = cjson(json_pack("{s:s}", "k\"\\", "\\\\"));
	ck_assert_str_eq(s, "{\"k\\\"\\\\\":\"\\\\\\\\\"}");
	free(s);
	s = cjson(json_string(""));
	ck_assert_str_eq(s, "\"\"");
	free(s);
}
END_TEST

START_TEST(cjson_sorts_keys_by_utf8_bytes)
{
	json_t *o = json_object();
	char *s;

	/* U+FF61 (ef bd a1) sorts before U+10000 (f0 90 80 80) by UTF-8 bytes and code points,
	 * after it in UTF-16 order: catches a sort by UTF-16 units. */
	json_object_set_new(o, "\xf0\x90\x80\x80", json_integer(8));
	json_object_set_new(o, "\xef\xbd\xa1", json_integer(7));
	json_object_set_new(o, "\xe2\x82\xac", json_integer(6));
	json_object_set_new(o, "\xc3\xa9", json_integer(5));
	json_object_set_new(o, "b", json_integer(4));
	json_object_set_new(o, "aa", json_integer(3));
	json_object_set_new(o, "a", json_integer(2));
	json_object_set_new(o, "B", json_integer(1));
	json_object_set_new(o, "", json_integer(0));
	json_object_set_new(o, "_type", json_integer(-1));
	s = cjson(o);
	ck_assert_str_eq(s, "{\"\":0,\"B\":1,\"_type\":-1,\"a\":2,\"aa\":3,\"b\":4,\"\xc3\xa9\":5,"
			    "\"\xe2\x82\xac\":6,\"\xef\xbd\xa1\":7,\"\xf0\x90\x80\x80\":8}");
	free(s);
}
END_TEST

START_TEST(cjson_writes_nested_values_without_whitespace)
{
	char *s = cjson(parse_ok(" { \"b\" : [ 1 , true , false , null , { \"d\" : \"x\" , "
				 "\"c\" : -5 } , [ ] ] , \"a\" : { } }\n"));

	ck_assert_str_eq(s, "{\"a\":{},\"b\":[1,true,false,null,{\"c\":-5,\"d\":\"x\"},[]]}");
	free(s);
}
END_TEST

START_TEST(cjson_writes_integers_exactly)
{
	char *s =
	    cjson(json_pack("[I,I,I,I,I]", (json_int_t)0, (json_int_t)-1, (json_int_t)1700000000,
			    (json_int_t)INT64_MAX, (json_int_t)INT64_MIN));

	ck_assert_str_eq(s, "[0,-1,1700000000,9223372036854775807,-9223372036854775808]");
	free(s);
}
END_TEST

START_TEST(cjson_rejects_reals_and_invalid_utf8)
{
	json_t *bad[] = {
	    json_real(1.0),
	    json_pack("{s:[i,f]}", "a", 1, 0.5),
	    json_stringn_nocheck("\xff", 1),
	    json_stringn_nocheck("\xc0\xaf", 2),	 /* overlong '/' */
	    json_stringn_nocheck("\xed\xa0\x80", 3),	 /* a UTF-16 surrogate */
	    json_stringn_nocheck("\xf4\x90\x80\x80", 4), /* past U+10FFFF */
	    json_stringn_nocheck("\xe2\x82", 2),	 /* cut short */
	};
	json_t *o = json_object();
	char *buf = (char *)"untouched";
	size_t i, len = 7;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_ptr_nonnull(bad[i]);
		ck_assert_int_eq(verify_cjson_dump(bad[i], &buf, &len), -EINVAL);
		json_decref(bad[i]);
	}
	ck_assert_int_eq(json_object_set_new_nocheck(o, "\xfe", json_true()), 0);
	ck_assert_int_eq(verify_cjson_dump(o, &buf, &len), -EINVAL);
	json_decref(o);
	ck_assert_str_eq(buf, "untouched");
	ck_assert_uint_eq(len, 7);
}
END_TEST

START_TEST(cjson_round_trip_is_deterministic)
{
	static const char pretty[] =
	    "{\n  \"signed\": {\"version\": 3, \"_type\": \"targets\", \"targets\": {\n"
	    "    \"z/1.json\": {\"length\": 10}, \"a/2.json\": {\"hashes\": {\"sha256\": "
	    "\"ab\"}}}},\n"
	    "  \"signatures\": [{\"sig\": \"00\", \"keyid\": \"k\"}]\n}\n";
	static const char canon[] =
	    "{\"signatures\":[{\"keyid\":\"k\",\"sig\":\"00\"}],\"signed\":{\"_type\":\"targets\","
	    "\"targets\":{\"a/2.json\":{\"hashes\":{\"sha256\":\"ab\"}},\"z/"
	    "1.json\":{\"length\":10}},"
	    "\"version\":3}}";
	char *one = cjson(parse_ok(pretty)), *two = cjson(parse_ok(one));

	ck_assert_str_eq(one, canon);
	ck_assert_str_eq(two, canon);
	free(one);
	free(two);
}
END_TEST

START_TEST(json_parse_is_strict)
{
	static const char *const bad[] = {
	    "",
	    "{",
	    "{\"a\":1,\"a\":2}",
	    "{\"a\":1} x",
	    "{\"a\":1}{}",
	    "{\"a\":\"x\\u0000y\"}",
	    "{\"a\":\"\xff\"}",
	    "{'a':1}",
	    "\"just a string\"",
	};
	json_t *j = NULL;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(verify_json_parse(bad[i], strlen(bad[i]), "in.json", &j),
				 STORK_EFORMAT);
		ck_assert_ptr_null(j);
		ck_assert_str_eq(strstr(stork_error_detail(), "in.json: line ") ? "ok" : "", "ok");
	}
	ck_assert_int_eq(verify_json_parse("{\"a\":1,\n\"a\":2}", 14, "x.json", &j), STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "x.json: line 2 column"));
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "duplicate"));
	/* The length bounds the input: a NUL byte inside it is not a terminator. */
	ck_assert_int_eq(verify_json_parse("{}\0{}", 5, "nul.json", &j), STORK_EFORMAT);
	ck_assert_int_eq(verify_json_parse("{}xyz", 2, "len.json", &j), 0);
	json_decref(j);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Names. */

START_TEST(package_names_follow_the_charset)
{
	static const char *const good[] = {"hello", "libc6", "g++", "a", "Foo.Bar_baz-1", "0ad"};
	static const char *const bad[] = {"",	 "-x",	   "+x",  ".hidden",  "_a",
					  "a b", "a\x01z", "a*",  "\xc3\xa9", "a:b",
					  "a~b", "a/b",	   "a\\b"};
	char longest[130];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_int_eq(verify_check_package_name(good[i]), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(verify_check_package_name(bad[i]), STORK_ENAME);
	memset(longest, 'a', 128);
	longest[128] = '\0';
	ck_assert_int_eq(verify_check_package_name(longest), 0);
	longest[128] = 'a';
	longest[129] = '\0';
	ck_assert_int_eq(verify_check_package_name(longest), STORK_ENAME);

	ck_assert_int_eq(verify_check_package_name("a/b"), STORK_ENAME);
	ck_assert_str_eq(stork_error_detail(),
			 "package name \"a/b\": character '/' at position 1 is not allowed "
			 "(allowed: letters, digits and + . _ -; first must be a letter or digit)");
	ck_assert_int_eq(verify_check_package_name("a\x01z"), STORK_ENAME);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "\"a\\x01z\""));
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "'\\x01' at position 1"));
	ck_assert_int_eq(verify_check_package_name(".hidden"), STORK_ENAME);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "'.' at position 0"));
}
END_TEST

START_TEST(versions_follow_the_charset_and_refuse_latest)
{
	static const char *const good[] = {"2.10-3", "1:2.3~rc1+dfsg", "0", "1.0_beta", "Latest"};
	static const char *const bad[] = {"latest", "",	   ".1",    "-1",  "~1",
					  "1/2",    "1 2", "1\x7f", "1\n", "1*"};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_int_eq(verify_check_version(good[i]), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(verify_check_version(bad[i]), STORK_ENAME);
	ck_assert_int_eq(verify_check_version("latest"), STORK_ENAME);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "version \"latest\": reserved"));
}
END_TEST

START_TEST(role_names_are_lowercase_and_not_top_level)
{
	static const char *const good[] = {"alice", "bob_2", "a-b", "0x", "z"};
	static const char *const bad[] = {"Alice",     "root", "targets", "snapshot",
					  "timestamp", "",     "-a",	  "_a",
					  "a.b",       "a b",  "a\x01",	  "a/b"};
	char longest[66];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_int_eq(verify_check_role_name(good[i]), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(verify_check_role_name(bad[i]), STORK_ENAME);
	memset(longest, 'r', 64);
	longest[64] = '\0';
	ck_assert_int_eq(verify_check_role_name(longest), 0);
	longest[64] = 'r';
	longest[65] = '\0';
	ck_assert_int_eq(verify_check_role_name(longest), STORK_ENAME);
}
END_TEST

START_TEST(name_patterns_allow_wildcards_only_in_place)
{
	static const char *const good[] = {"hello", "lib*",  "*",      "?x",
					   "[ab]c", "[!a]*", "[a-z]*", "py3-*"};
	static const char *const bad[] = {"",	 "a/b", "[ab", "ab]", "a!",    "[]",
					  "[!]", ".x",	"*/x", "a b", "[[a]]", "x\x01"};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(verify_check_name_pattern(good[i]) == 0, "%s", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(verify_check_name_pattern(bad[i]) == STORK_ENAME, "%s", bad[i]);
	ck_assert(verify_name_matches("lib*", "libfoo"));
	ck_assert(verify_name_matches("lib*", "lib"));
	ck_assert(!verify_name_matches("lib*", "foo"));
	ck_assert(verify_name_matches("[!a]*", "bcd"));
	ck_assert(!verify_name_matches("[!a]*", "abc"));
	ck_assert(verify_name_matches("h?llo", "hello"));
	ck_assert(!verify_name_matches("hello", "hello2"));
	ck_assert(verify_name_matches("*", ".x"));
}
END_TEST

START_TEST(target_paths_split_back_into_name_and_version)
{
	static const char *const bad[] = {"hello.json",	       "a/b/c.json",	"hello/2.0",
					  "hello/latest.json", "/1.json",	"hello/.json",
					  "../x/1.json",       "hello/1.json/", "a b/1.json",
					  "hello/1.JSON",      ".json",		"hello//1.json"};
	char *p = verify_target_path("hello", "2.10-3"), *name = NULL, *version = NULL;
	size_t i;

	ck_assert_str_eq(p, "hello/2.10-3.json");
	ck_assert_int_eq(verify_target_split(p, &name, &version), 0);
	ck_assert_str_eq(name, "hello");
	ck_assert_str_eq(version, "2.10-3");
	free(p);
	free(name);
	free(version);
	ck_assert_int_eq(verify_target_split("lib.json/1.json.json", &name, &version), 0);
	ck_assert_str_eq(name, "lib.json");
	ck_assert_str_eq(version, "1.json");
	free(name);
	free(version);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		name = version = NULL;
		ck_assert_msg(verify_target_split(bad[i], &name, &version) == STORK_EFORMAT, "%s",
			      bad[i]);
		ck_assert_ptr_null(name);
		ck_assert_ptr_null(version);
	}
}
END_TEST

/* The one check of paths that metadata names before a source opens or requests them: the
 * directory source (verify/dirsource.c) and the fetcher (fetch/try.c) both use it. */
START_TEST(relpath_check_refuses_hostile_paths)
{
	static const struct {
		const char *path, *detail;
	} bad[] = {
	    {"", "\"\": empty path"},
	    {"..", "\"..\": path leaves the repository"},
	    {"../x", "\"../x\": path leaves the repository"},
	    {"a/../b", "\"a/../b\": path leaves the repository"},
	    {"a/..", "\"a/..\": path leaves the repository"},
	    {"/etc/passwd", "\"/etc/passwd\": absolute path"},
	    {"//x", "\"//x\": absolute path"},
	    {"a//b", "\"a//b\": empty path component"},
	    {"a/", "\"a/\": empty path component"},
	    {".", "\".\": \".\" path component"},
	    {"./a", "\"./a\": \".\" path component"},
	    {"a/./b", "\"a/./b\": \".\" path component"},
	    {"a\\b", "\"a\\\\b\": backslash in the path"},
	    {"..\\..\\x", "\"..\\\\..\\\\x\": backslash in the path"},
	    {"a\x01"
	     "b",
	     "\"a\\x01b\": control character"},
	    {"a\nb", "\"a\\x0ab\": control character"},
	    {"a\x7f", "\"a\\x7f\": control character"},
	};
	static const char *const good[] = {
	    "objects/ab/cdef",
	    "metadata/1.root.json",
	    "targets/hello/x.2.10-3.json",
	    "...",
	    "a..b/..c",
	    "%2e%2e/x", /* never decoded: a name */
	};
	char longpath[5000], longcomp[300];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		stork_error_clear();
		ck_assert_msg(verify_check_relpath(bad[i].path) == -EINVAL, "accepted \"%s\"",
			      bad[i].path);
		ck_assert_str_eq(stork_error_detail(), bad[i].detail);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(verify_check_relpath(good[i]) == 0, "refused \"%s\"", good[i]);

	ck_assert_int_eq(verify_check_relpath("a/\xff"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), ": path is not valid UTF-8"));
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	for (size_t i = 200; i < sizeof(longpath) - 1; i += 201)
		longpath[i] = '/';
	ck_assert_int_eq(verify_check_relpath(longpath), -EINVAL);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), ": path longer than 4096 bytes"));
	ck_assert_uint_lt(strlen(stork_error_detail()), 400); /* the path is cut when quoted */
	memset(longcomp, 'b', sizeof(longcomp) - 1);
	longcomp[sizeof(longcomp) - 1] = '\0';
	ck_assert_int_eq(verify_check_relpath(longcomp), -EINVAL);
	ck_assert_ptr_nonnull(
	    strstr(stork_error_detail(), ": path component longer than 255 bytes"));
}
END_TEST

/* The directory source refuses what the check refuses, before opening anything: a file that
 * exists under the hostile spelling is not read. */
START_TEST(dir_source_refuses_hostile_paths)
{
	static const char *const names[] = {"repo/metadata/x.json", "repo/metadata", "repo",
					    "secret", NULL};
	static const char *const hostile[] = {"../secret",	   "metadata/../../secret",
					      "metadata/./x.json", "metadata//x.json",
					      "./metadata/x.json", "metadata\\x.json"};
	char *dir = tmpdir_new(), *repo = path_in(dir, "repo"), *p;
	struct verify_source src;
	uint8_t *buf;
	size_t len;

	ck_assert_int_eq(mkdir(repo, 0755), 0);
	p = path_in(dir, "repo/metadata");
	ck_assert_int_eq(mkdir(p, 0755), 0);
	free(p);
	p = path_in(dir, "repo/metadata/x.json");
	write_file(p, "{}", 0644);
	free(p);
	p = path_in(dir, "secret");
	write_file(p, "secret", 0644);
	free(p);

	ck_assert_int_eq(verify_dir_source_init(&src, repo), 0);
	ck_assert_int_eq(src.get(src.ctx, "metadata/x.json", 100, &buf, &len), 0);
	ck_assert_uint_eq(len, 2);
	free(buf);
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		buf = NULL;
		ck_assert_msg(src.get(src.ctx, hostile[i], 100, &buf, &len) == -EINVAL,
			      "read \"%s\"", hostile[i]);
		ck_assert_ptr_null(buf);
	}
	verify_dir_source_fini(&src);
	free(repo);
	tmpdir_free(dir, names);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Manifests. */

#define HASH_A "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

static struct verify_entry dir_entry(const char *path, uint32_t mode, int64_t mtime)
{
	struct verify_entry e = {
	    .path = (char *)path, .type = VERIFY_DIR, .mode = mode, .mtime = mtime};

	return e;
}

static struct verify_entry file_entry(const char *path, uint64_t size, int64_t mtime)
{
	struct verify_entry e = {.path = (char *)path,
				 .type = VERIFY_FILE,
				 .mode = 0644,
				 .mtime = mtime,
				 .size = size,
				 .zsize = size / 2 + 9};

	unhex_ok(HASH_A, e.hash, VERIFY_HASH_LEN);
	return e;
}

static struct verify_entry link_entry(const char *path, const char *target)
{
	struct verify_entry e = {.path = (char *)path,
				 .type = VERIFY_SYMLINK,
				 .mode = 0777,
				 .mtime = 1700000000,
				 .target = (char *)target};

	return e;
}

static struct verify_manifest *manifest_new(void)
{
	struct verify_manifest *m = NULL;

	ck_assert_int_eq(verify_manifest_new("hello", "2.10-3", "deb", &m), 0);
	return m;
}

static void add_ok(struct verify_manifest *m, struct verify_entry e)
{
	ck_assert_int_eq(verify_manifest_add(m, &e), 0);
}

static int add_code(struct verify_entry e)
{
	struct verify_manifest *m = manifest_new();
	int r = verify_manifest_add(m, &e);

	if (r < 0)
		ck_assert_uint_eq(m->n, 0);
	verify_manifest_free(m);
	return r;
}

START_TEST(manifest_finish_sorts_and_adds_missing_parents)
{
	struct verify_manifest *m = manifest_new();
	const struct verify_entry *e;

	add_ok(m, link_entry("usr/bin/hi", "hello"));
	add_ok(m, file_entry("usr/share/doc/hello/README", 100, 1600000000));
	add_ok(m, file_entry("usr/bin/hello", 123, 1700000000));
	add_ok(m, dir_entry("usr", 0700, 5));
	add_ok(m, file_entry("usr-extra", 0, 7));
	add_ok(m, file_entry("usr/bin-x", 1, 8));
	ck_assert_int_eq(verify_manifest_finish(m), 0);

	ck_assert_uint_eq(m->n, 10);
	ck_assert_str_eq(m->entries[0].path, "usr");
	ck_assert_str_eq(m->entries[1].path, "usr-extra");
	ck_assert_str_eq(m->entries[2].path, "usr/bin");
	ck_assert_str_eq(m->entries[3].path, "usr/bin-x");
	ck_assert_str_eq(m->entries[4].path, "usr/bin/hello");
	ck_assert_str_eq(m->entries[5].path, "usr/bin/hi");
	ck_assert_str_eq(m->entries[6].path, "usr/share");
	ck_assert_str_eq(m->entries[7].path, "usr/share/doc");
	ck_assert_str_eq(m->entries[8].path, "usr/share/doc/hello");
	ck_assert_str_eq(m->entries[9].path, "usr/share/doc/hello/README");
	/* The given directory keeps its mode; synthesized ones get 0755 and a child's mtime. */
	ck_assert_uint_eq(m->entries[0].mode, 0700);
	e = verify_manifest_find(m, "usr/bin");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->type, VERIFY_DIR);
	ck_assert_uint_eq(e->mode, 0755);
	ck_assert_int_eq(e->mtime, 1700000000); /* usr/bin-x is usr's child, not usr/bin's */
	e = verify_manifest_find(m, "usr/share/doc/hello");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(e->mtime, 1600000000);
	e = verify_manifest_find(m, "usr/bin/hi");
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(e->target, "hello");
	ck_assert_uint_eq(e->size, 5);
	ck_assert_ptr_null(verify_manifest_find(m, "usr/bin/nope"));
	ck_assert_ptr_null(verify_manifest_find(m, ""));
	ck_assert_uint_eq(m->total_size, 224);
	verify_manifest_free(m);
	verify_manifest_free(NULL);
}
END_TEST

START_TEST(manifest_dump_is_the_documented_canonical_json)
{
	struct verify_manifest *m = manifest_new();
	struct verify_dep libc = {
	    .name = (char *)"libc6", .op = (char *)">=", .version = (char *)"2.34"};
	struct verify_dep alts[] = {{.name = (char *)"a"}, {.name = (char *)"b"}};
	struct verify_entry f = file_entry("usr/bin/hello", 123, 1700000000);
	char *buf = NULL;
	size_t len = 0;

	f.mode = 0755;
	f.zsize = 80;
	add_ok(m, link_entry("usr/bin/hi", "hello"));
	add_ok(m, f);
	add_ok(m, dir_entry("usr", 0755, 1700000000));
	ck_assert_int_eq(verify_manifest_add_depgroup(m, &libc, 1), 0);
	ck_assert_int_eq(verify_manifest_add_depgroup(m, alts, 2), 0);
	ck_assert_int_eq(verify_manifest_finish(m), 0);
	ck_assert_int_eq(verify_manifest_dump(m, &buf, &len), 0);
	ck_assert_str_eq(
	    buf,
	    "{\"_type\":\"storkfs-manifest\",\"depends\":[[{\"name\":\"libc6\",\"op\":\">=\","
	    "\"version\":\"2.34\"}],[{\"name\":\"a\"},{\"name\":\"b\"}]],\"files\":["
	    "{\"mode\":493,\"mtime\":1700000000,\"path\":\"usr\",\"type\":\"dir\"},"
	    "{\"mode\":493,\"mtime\":1700000000,\"path\":\"usr/bin\",\"type\":\"dir\"},"
	    "{\"mode\":493,\"mtime\":1700000000,\"path\":\"usr/bin/hello\",\"sha256\":\"" HASH_A
	    "\",\"size\":123,\"type\":\"file\",\"zsize\":80},"
	    "{\"mode\":511,\"mtime\":1700000000,\"path\":\"usr/bin/hi\",\"target\":\"hello\","
	    "\"type\":\"symlink\"}],\"format\":\"deb\",\"name\":\"hello\",\"spec_version\":1,"
	    "\"version\":\"2.10-3\"}");
	ck_assert_uint_eq(len, strlen(buf));
	free(buf);
	verify_manifest_free(m);
}
END_TEST

START_TEST(manifest_round_trips_through_dump_and_parse)
{
	struct verify_manifest *m = manifest_new(), *p = NULL;
	struct verify_dep d1[] = {
	    {.name = (char *)"perl(Carp)"},
	    {.name = (char *)"x", .op = (char *)"<<", .version = (char *)"1:2~3"}};
	struct verify_entry big = file_entry("opt/big \"quoted\" \xc3\xa9", 5000000000ULL, -1);
	char *one = NULL, *two = NULL;
	size_t len1 = 0, len2 = 0, i, k;

	big.mode = 06755;
	add_ok(m, big);
	add_ok(m, file_entry("opt/empty", 0, 0));
	add_ok(m, link_entry("opt/abs", "/etc/passwd"));
	add_ok(m, link_entry("opt/up", "../../x\\y"));
	add_ok(m, dir_entry("opt/sticky", 01777, INT64_MAX));
	ck_assert_int_eq(verify_manifest_add_depgroup(m, d1, 2), 0);
	ck_assert_int_eq(verify_manifest_finish(m), 0);
	ck_assert_int_eq(verify_manifest_dump(m, &one, &len1), 0);
	ck_assert_int_eq(verify_manifest_parse(one, len1, "rt.json", &p), 0);
	ck_assert_int_eq(verify_manifest_dump(p, &two, &len2), 0);
	ck_assert_uint_eq(len1, len2);
	ck_assert_str_eq(one, two);

	ck_assert_str_eq(p->name, "hello");
	ck_assert_str_eq(p->version, "2.10-3");
	ck_assert_str_eq(p->format, "deb");
	ck_assert_uint_eq(p->total_size, 5000000000ULL);
	ck_assert_uint_eq(p->n, m->n);
	for (i = 0; i < m->n; i++) {
		const struct verify_entry *a = &m->entries[i], *b = &p->entries[i];

		ck_assert_str_eq(a->path, b->path);
		ck_assert_int_eq(a->type, b->type);
		ck_assert_uint_eq(a->mode, b->mode);
		ck_assert_int_eq(a->mtime, b->mtime);
		ck_assert_uint_eq(a->size, b->size);
		ck_assert_uint_eq(a->zsize, b->zsize);
		ck_assert_mem_eq(a->hash, b->hash, VERIFY_HASH_LEN);
		if (a->type == VERIFY_SYMLINK)
			ck_assert_str_eq(a->target, b->target);
		else
			ck_assert_ptr_null(b->target);
	}
	ck_assert_uint_eq(p->ndepends, 1);
	ck_assert_uint_eq(p->depends[0].n, 2);
	for (k = 0; k < 2; k++) {
		ck_assert_str_eq(p->depends[0].alts[k].name, d1[k].name);
		if (d1[k].op) {
			ck_assert_str_eq(p->depends[0].alts[k].op, d1[k].op);
			ck_assert_str_eq(p->depends[0].alts[k].version, d1[k].version);
		} else {
			ck_assert_ptr_null(p->depends[0].alts[k].op);
			ck_assert_ptr_null(p->depends[0].alts[k].version);
		}
	}
	ck_assert_ptr_nonnull(verify_manifest_find(p, "opt/empty"));
	free(one);
	free(two);
	verify_manifest_free(m);
	verify_manifest_free(p);
}
END_TEST

START_TEST(manifest_add_refuses_hostile_paths)
{
	char longpath[4200], longcomp[300];
	struct verify_entry e;

	ck_assert_int_eq(add_code(file_entry("../x", 1, 0)), STORK_EHOSTILE);
	ck_assert_str_eq(stork_error_detail(), "\"../x\": path leaves the package root");
	ck_assert_int_eq(add_code(file_entry("/etc/x", 1, 0)), STORK_EHOSTILE);
	ck_assert_str_eq(stork_error_detail(), "\"/etc/x\": absolute path");
	ck_assert_int_eq(add_code(file_entry("a\x01"
					     "b",
					     1, 0)),
			 STORK_EHOSTILE);
	ck_assert_str_eq(stork_error_detail(), "\"a\\x01b\": control character");
	ck_assert_int_eq(add_code(file_entry("a/../../b", 1, 0)), STORK_EHOSTILE);
	ck_assert_int_eq(add_code(file_entry("a/..", 1, 0)), STORK_EHOSTILE);
	ck_assert_int_eq(add_code(file_entry("a\x7f", 1, 0)), STORK_EHOSTILE);
	ck_assert_int_eq(add_code(file_entry("a\n", 1, 0)), STORK_EHOSTILE);
	ck_assert_int_eq(add_code(file_entry("", 1, 0)), STORK_EHOSTILE);
	ck_assert_int_eq(add_code(file_entry(".", 1, 0)), STORK_EHOSTILE);
	ck_assert_int_eq(add_code(file_entry("./a", 1, 0)), STORK_EHOSTILE);
	ck_assert_int_eq(add_code(file_entry("a/./b", 1, 0)), STORK_EHOSTILE);
	ck_assert_int_eq(add_code(file_entry("a//b", 1, 0)), STORK_EHOSTILE);
	ck_assert_int_eq(add_code(dir_entry("a/", 0755, 0)), STORK_EHOSTILE);
	ck_assert_int_eq(add_code(file_entry("a/\xff", 1, 0)), STORK_EHOSTILE);
	memset(longcomp, 'c', 256);
	longcomp[256] = '\0';
	ck_assert_int_eq(add_code(file_entry(longcomp, 1, 0)), STORK_EHOSTILE);
	longcomp[255] = '\0';
	ck_assert_int_eq(add_code(file_entry(longcomp, 1, 0)), 0);
	memset(longpath, 'p', sizeof(longpath));
	for (size_t i = 100; i < sizeof(longpath); i += 101)
		longpath[i] = '/';
	longpath[4096] = '\0';
	ck_assert_int_eq(add_code(file_entry(longpath, 1, 0)), 0);
	longpath[4096] = 'p';
	longpath[4097] = '\0';
	ck_assert_int_eq(add_code(file_entry(longpath, 1, 0)), STORK_EHOSTILE);
	ck_assert_int_eq(add_code(file_entry("...", 1, 0)), 0);
	ck_assert_int_eq(add_code(file_entry(".hidden/..x", 1, 0)), 0);
	/* Symlink targets: anything printable, but present. */
	ck_assert_int_eq(add_code(link_entry("l", NULL)), STORK_EHOSTILE);
	ck_assert_int_eq(add_code(link_entry("l", "")), STORK_EHOSTILE);
	ck_assert_int_eq(add_code(link_entry("l", "a\x1b[31m")), STORK_EHOSTILE);
	ck_assert_int_eq(add_code(link_entry("l", "/abs/../ok")), 0);
	e = file_entry("x", 1, 0);
	e.mode = 0100644;
	ck_assert_int_eq(add_code(e), -EINVAL);
}
END_TEST

START_TEST(manifest_finish_refuses_duplicates)
{
	struct verify_manifest *m = manifest_new();

	add_ok(m, file_entry("a/x", 1, 0));
	add_ok(m, dir_entry("a", 0755, 0));
	add_ok(m, link_entry("a/x", "y"));
	ck_assert_int_eq(verify_manifest_finish(m), STORK_EHOSTILE);
	ck_assert_str_eq(stork_error_detail(), "duplicate path \"a/x\"");
	verify_manifest_free(m);
	m = manifest_new();
	add_ok(m, dir_entry("a", 0755, 0));
	add_ok(m, dir_entry("a", 0755, 0));
	ck_assert_int_eq(verify_manifest_finish(m), STORK_EHOSTILE);
	verify_manifest_free(m);
}
END_TEST

START_TEST(manifest_finish_refuses_paths_below_symlink_or_file)
{
	struct verify_manifest *m = manifest_new();

	add_ok(m, link_entry("a", "/etc"));
	add_ok(m, file_entry("a/b", 1, 0));
	ck_assert_int_eq(verify_manifest_finish(m), STORK_EHOSTILE);
	ck_assert_str_eq(stork_error_detail(), "\"a/b\": parent \"a\" is a symlink");
	verify_manifest_free(m);

	/* Deeper, with the intermediate directory missing. */
	m = manifest_new();
	add_ok(m, file_entry("x/f", 1, 0));
	add_ok(m, file_entry("x/f/g/h", 1, 0));
	ck_assert_int_eq(verify_manifest_finish(m), STORK_EHOSTILE);
	ck_assert_str_eq(stork_error_detail(), "\"x/f/g/h\": parent \"x/f\" is a file");
	verify_manifest_free(m);

	/* A sibling that sorts between parent and child ("a-c") does not confuse the search. */
	m = manifest_new();
	add_ok(m, file_entry("a-c", 1, 0));
	add_ok(m, file_entry("a/b", 1, 0));
	add_ok(m, dir_entry("a", 0755, 0));
	ck_assert_int_eq(verify_manifest_finish(m), 0);
	ck_assert_uint_eq(m->n, 3);
	verify_manifest_free(m);
}
END_TEST

START_TEST(manifest_add_depgroup_checks_alternatives)
{
	struct verify_manifest *m = manifest_new();
	struct verify_dep ok = {.name = (char *)"a"};
	struct verify_dep op_only = {.name = (char *)"a", .op = (char *)">="};
	struct verify_dep bad_op = {
	    .name = (char *)"a", .op = (char *)"~=", .version = (char *)"1"};
	struct verify_dep no_name = {.op = (char *)">=", .version = (char *)"1"};

	ck_assert_int_eq(verify_manifest_add_depgroup(m, &ok, 0), -EINVAL);
	ck_assert_int_eq(verify_manifest_add_depgroup(m, &op_only, 1), -EINVAL);
	ck_assert_int_eq(verify_manifest_add_depgroup(m, &bad_op, 1), -EINVAL);
	ck_assert_int_eq(verify_manifest_add_depgroup(m, &no_name, 1), -EINVAL);
	ck_assert_uint_eq(m->ndepends, 0);
	ck_assert_int_eq(verify_manifest_add_depgroup(m, &ok, 1), 0);
	ck_assert_uint_eq(m->ndepends, 1);
	verify_manifest_free(m);
}
END_TEST

/* A big file's chunk list (spec_version 3): kept through dump and parse, checked when added and
 * when parsed, and refused by a manifest that says an older spec_version. */
START_TEST(manifest_chunks_round_trip_and_are_checked)
{
	struct verify_manifest *m = manifest_new(), *p = NULL;
	struct verify_entry big = file_entry("opt/big", 3000, 1), c[3] = {{0}};
	char *one = NULL, *two = NULL, *at;
	size_t len1 = 0, len2 = 0;

	for (int i = 0; i < 3; i++) {
		c[i].type = VERIFY_FILE;
		c[i].offset = 1000 * (uint64_t)i;
		c[i].size = 1000;
		c[i].zsize = 500 + (uint64_t)i;
		memset(c[i].hash, 0x11 * (i + 1), VERIFY_HASH_LEN);
	}
	big.zsize = 1503;
	big.chunks = c;
	big.nchunks = 3;
	/* chunks that leave a gap, overlap, or do not add up are refused when added */
	c[1].offset = 999;
	ck_assert_int_eq(add_code(big), -EINVAL);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "chunk 1"));
	c[1].offset = 1000;
	big.zsize = 1502;
	ck_assert_int_eq(add_code(big), -EINVAL);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "zsizes"));
	big.zsize = 1503;
	big.size = 3001;
	ck_assert_int_eq(add_code(big), -EINVAL);
	big.size = 3000;
	add_ok(m, big);
	add_ok(m, file_entry("opt/small", 10, 1));
	ck_assert_int_eq(verify_manifest_finish(m), 0);
	ck_assert_int_eq(verify_manifest_dump(m, &one, &len1), 0);
	ck_assert_ptr_nonnull(strstr(one, "\"spec_version\":3"));
	ck_assert_int_eq(verify_manifest_parse(one, len1, "rt.json", &p), 0);
	ck_assert_int_eq(verify_manifest_dump(p, &two, &len2), 0);
	ck_assert_str_eq(one, two);
	{
		const struct verify_entry *e = verify_manifest_find(p, "opt/big");

		ck_assert_uint_eq(e->nchunks, 3);
		for (size_t i = 0; i < 3; i++) {
			ck_assert_uint_eq(e->chunks[i].offset, c[i].offset);
			ck_assert_uint_eq(e->chunks[i].size, c[i].size);
			ck_assert_uint_eq(e->chunks[i].zsize, c[i].zsize);
			ck_assert_mem_eq(e->chunks[i].hash, c[i].hash, VERIFY_HASH_LEN);
		}
		ck_assert_uint_eq(verify_entry_chunk_at(e, 0), 0);
		ck_assert_uint_eq(verify_entry_chunk_at(e, 999), 0);
		ck_assert_uint_eq(verify_entry_chunk_at(e, 1000), 1);
		ck_assert_uint_eq(verify_entry_chunk_at(e, 2999), 2);
		ck_assert_uint_eq(verify_manifest_find(p, "opt/small")->nchunks, 0);
	}
	verify_manifest_free(p);
	p = NULL;
	/* the same document saying spec_version 2: refused, naming the rule */
	at = strstr(one, "\"spec_version\":3");
	at[strlen("\"spec_version\":")] = '2';
	ck_assert_int_eq(verify_manifest_parse(one, len1, "old.json", &p), STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "needs spec_version 3"));
	/* spec_version 3 with chunks that do not cover the file: refused, naming the entry */
	at[strlen("\"spec_version\":")] = '3';
	at = strstr(one, "\"offset\":2000");
	ck_assert_ptr_nonnull(at);
	at[strlen("\"offset\":")] = '1';
	ck_assert_int_eq(verify_manifest_parse(one, len1, "bad.json", &p), STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "opt/big"));
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "chunk 2"));
	free(one);
	free(two);
	verify_manifest_free(m);
}
END_TEST

/* A manifest document with the given files array (and optional extra top-level members). */
#define MANIFEST_DOC(files)                                                                        \
	"{\"_type\":\"storkfs-manifest\",\"spec_version\":1,\"name\":\"hello\",\"version\":"       \
	"\"1.0\",\"format\":\"tar\",\"depends\":[],\"files\":" files "}"
#define DIR_USR "{\"path\":\"usr\",\"type\":\"dir\",\"mode\":493,\"mtime\":1}"
#define FILE_AT(p)                                                                                 \
	"{\"path\":\"" p "\",\"type\":\"file\",\"mode\":420,\"mtime\":1,\"size\":3,\"zsize\":12,"  \
	"\"sha256\":\"" HASH_A "\"}"

static int parse_code(const char *doc)
{
	struct verify_manifest *m = NULL;
	int r = verify_manifest_parse(doc, strlen(doc), "t.json", &m);

	if (r == 0)
		verify_manifest_free(m);
	else
		ck_assert_ptr_null(m);
	return r;
}

START_TEST(manifest_parse_accepts_a_valid_document)
{
	static const char doc[] = MANIFEST_DOC(
	    "[" DIR_USR "," FILE_AT("usr/a") ",{\"path\":\"usr/l\",\"type\":\"symlink\","
					     "\"mode\":511,\"mtime\":-3,\"target\":\"a\"}]");
	struct verify_manifest *m = NULL;

	ck_assert_int_eq(verify_manifest_parse(doc, strlen(doc), "t.json", &m), 0);
	ck_assert_uint_eq(m->n, 3);
	ck_assert_uint_eq(m->total_size, 3);
	ck_assert_int_eq(m->entries[2].mtime, -3);
	ck_assert_uint_eq(m->entries[2].size, 1);
	ck_assert_uint_eq(m->entries[1].zsize, 12);
	ck_assert_uint_eq(m->ndepends, 0);
	verify_manifest_free(m);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[]")), 0);
}
END_TEST

START_TEST(manifest_parse_refuses_bad_documents)
{
	/* Not JSON, not the right document. */
	ck_assert_int_eq(parse_code("{\"_type\":"), STORK_EFORMAT);
	ck_assert_int_eq(parse_code("[]"), STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[]") " trailing"), STORK_EFORMAT);
	ck_assert_int_eq(parse_code("{\"_type\":\"targets\",\"spec_version\":1,\"name\":\"hello\","
				    "\"version\":\"1.0\",\"format\":\"tar\",\"depends\":[],"
				    "\"files\":[]}"),
			 STORK_EFORMAT);
	ck_assert_int_eq(
	    parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":4,\"name\":"
		       "\"hello\",\"version\":\"1.0\",\"format\":\"tar\",\"depends\":[],"
		       "\"files\":[]}"),
	    STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "spec_version 4"));
	/* Relations other than depends need spec_version 2, and hold one alternative a group. */
	ck_assert_int_eq(
	    parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":1,\"name\":"
		       "\"hello\",\"version\":\"1.0\",\"format\":\"deb\",\"depends\":[],"
		       "\"provides\":[[{\"name\":\"greeter\"}]],\"files\":[]}"),
	    STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "\"provides\" needs spec_version 2"));
	ck_assert_int_eq(
	    parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":2,\"name\":"
		       "\"hello\",\"version\":\"1.0\",\"format\":\"deb\",\"depends\":[],"
		       "\"provides\":[[{\"name\":\"greeter\"}]],\"files\":[]}"),
	    0);
	ck_assert_int_eq(
	    parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":2,\"name\":"
		       "\"hello\",\"version\":\"1.0\",\"format\":\"deb\",\"depends\":[],"
		       "\"conflicts\":[[{\"name\":\"a\"},{\"name\":\"b\"}]],\"files\":[]}"),
	    STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "conflicts[0]"));
	ck_assert_int_eq(
	    parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":1,\"name\":"
		       "\"hello\",\"version\":\"1.0\",\"format\":\"deb\",\"depends\":[],"
		       "\"replaces\":[[{\"name\":\"old\"}]],\"files\":[]}"),
	    STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "\"replaces\" needs spec_version 2"));
	ck_assert_int_eq(
	    parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":2,\"name\":"
		       "\"hello\",\"version\":\"1.0\",\"format\":\"deb\",\"depends\":[],"
		       "\"replaces\":[[{\"name\":\"old\",\"op\":\"<<\",\"version\":\"2\"}]],"
		       "\"files\":[]}"),
	    0);
	ck_assert_int_eq(parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":\"1\","
				    "\"name\":\"hello\",\"version\":\"1.0\",\"format\":\"tar\","
				    "\"depends\":[],\"files\":[]}"),
			 STORK_EFORMAT);
	/* Missing, unknown and duplicate members. */
	ck_assert_int_eq(
	    parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":1,\"name\":"
		       "\"hello\",\"version\":\"1.0\",\"format\":\"tar\",\"files\":[]}"),
	    STORK_EFORMAT);
	ck_assert_str_eq(stork_error_detail(), "t.json: missing \"depends\"");
	ck_assert_int_eq(parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":1,\"name\":"
				    "\"hello\",\"version\":\"1.0\",\"format\":\"tar\","
				    "\"depends\":[]}"),
			 STORK_EFORMAT);
	ck_assert_int_eq(
	    parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":1,\"name\":"
		       "\"hello\",\"version\":\"1.0\",\"format\":\"tar\",\"depends\":[],"
		       "\"files\":[],\"extra\":1}"),
	    STORK_EFORMAT);
	ck_assert_str_eq(stork_error_detail(), "t.json: unknown key \"extra\"");
	ck_assert_int_eq(parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":1,\"name\":"
				    "\"hello\",\"name\":\"hello\",\"version\":\"1.0\",\"format\":"
				    "\"tar\",\"depends\":[],\"files\":[]}"),
			 STORK_EFORMAT);
	/* Names, version, format. */
	ck_assert_int_eq(parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":1,\"name\":"
				    "\"a/b\",\"version\":\"1.0\",\"format\":\"tar\",\"depends\":[],"
				    "\"files\":[]}"),
			 STORK_ENAME);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "t.json: package name \"a/b\""));
	ck_assert_int_eq(parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":1,\"name\":"
				    "\"hello\",\"version\":\"latest\",\"format\":\"tar\","
				    "\"depends\":[],\"files\":[]}"),
			 STORK_ENAME);
	ck_assert_int_eq(parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":1,\"name\":5,"
				    "\"version\":\"1.0\",\"format\":\"tar\",\"depends\":[],"
				    "\"files\":[]}"),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":1,\"name\":"
				    "\"hello\",\"version\":\"1.0\",\"format\":\"zip\","
				    "\"depends\":[],\"files\":[]}"),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code("{\"_type\":\"storkfs-manifest\",\"spec_version\":1,\"name\":"
				    "\"hello\",\"version\":\"1.0\",\"format\":\"tar\","
				    "\"depends\":[],\"files\":{}}"),
			 STORK_EFORMAT);
}
END_TEST

#define DEPENDS_DOC(deps)                                                                          \
	"{\"_type\":\"storkfs-manifest\",\"spec_version\":1,\"name\":\"hello\",\"version\":"       \
	"\"1.0\",\"format\":\"deb\",\"depends\":" deps ",\"files\":[]}"

START_TEST(manifest_parse_refuses_bad_depends)
{
	ck_assert_int_eq(parse_code(DEPENDS_DOC("[[{\"name\":\"a\"},{\"name\":\"b\",\"op\":\"=\","
						"\"version\":\"1\"}]]")),
			 0);
	ck_assert_int_eq(parse_code(DEPENDS_DOC("{}")), STORK_EFORMAT);
	ck_assert_int_eq(parse_code(DEPENDS_DOC("[[]]")), STORK_EFORMAT);
	ck_assert_int_eq(parse_code(DEPENDS_DOC("[{\"name\":\"a\"}]")), STORK_EFORMAT);
	ck_assert_int_eq(parse_code(DEPENDS_DOC("[[{}]]")), STORK_EFORMAT);
	ck_assert_int_eq(parse_code(DEPENDS_DOC("[[{\"name\":\"\"}]]")), STORK_EFORMAT);
	ck_assert_int_eq(parse_code(DEPENDS_DOC("[[{\"name\":\"a b\"}]]")), STORK_EFORMAT);
	ck_assert_int_eq(parse_code(DEPENDS_DOC("[[{\"name\":\"a\",\"op\":\">=\"}]]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(DEPENDS_DOC("[[{\"name\":\"a\",\"version\":\"1\"}]]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(DEPENDS_DOC("[[{\"name\":\"a\",\"op\":\"~=\",\"version\":"
						"\"1\"}]]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(DEPENDS_DOC("[[{\"name\":\"a\",\"arch\":\"amd64\"}]]")),
			 STORK_EFORMAT);
	ck_assert_ptr_nonnull(strstr(stork_error_detail(), "depends[0][0]: unknown key \"arch\""));
}
END_TEST

START_TEST(manifest_parse_refuses_bad_entries)
{
	/* Entry shape. */
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[5]")), STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"type\":\"dir\",\"mode\":493,\"mtime\":1}]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"usr\",\"mode\":493,\"mtime\":1}]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(
	    parse_code(MANIFEST_DOC("[{\"path\":\"usr\",\"type\":\"dir\",\"mtime\":1}]")),
	    STORK_EFORMAT);
	ck_assert_int_eq(
	    parse_code(MANIFEST_DOC("[{\"path\":\"usr\",\"type\":\"dir\",\"mode\":493}]")),
	    STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"usr\",\"type\":\"fifo\",\"mode\":"
						 "493,\"mtime\":1}]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"usr\",\"type\":\"dir\",\"mode\":"
						 "\"493\",\"mtime\":1}]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"usr\",\"type\":\"dir\",\"mode\":"
						 "493,\"mtime\":1.5}]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"usr\",\"type\":\"dir\",\"mode\":"
						 "493,\"mtime\":1,\"uid\":0}]")),
			 STORK_EFORMAT);
	ck_assert_str_eq(stork_error_detail(), "t.json: files[0] \"usr\": unknown key \"uid\"");
	/* Modes. */
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"usr\",\"type\":\"dir\",\"mode\":"
						 "4096,\"mtime\":1}]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"usr\",\"type\":\"dir\",\"mode\":"
						 "-1,\"mtime\":1}]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"usr\",\"type\":\"dir\",\"mode\":"
						 "4095,\"mtime\":1}]")),
			 0);
	/* Files need size, zsize and a lower-case sha256. */
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"f\",\"type\":\"file\",\"mode\":420,"
						 "\"mtime\":1,\"size\":3,\"zsize\":1,\"sha256\":"
						 "\"xyz\"}]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC(
			     "[{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime\":1,"
			     "\"size\":3,\"zsize\":1,\"sha256\":\"2CF24DBA5FB0A30E26E83B2AC5B9"
			     "E29E1B161E5C1FA7425E73043362938B9824\"}]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC(
			     "[{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"mtime\":1,"
			     "\"size\":3,\"zsize\":1,\"sha256\":\"2cf24dba5fb0a30e26e83b2ac5b9"
			     "e29e1b161e5c1fa7425e73043362938b982\"}]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"f\",\"type\":\"file\",\"mode\":420,"
						 "\"mtime\":1,\"size\":3,\"zsize\":1}]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(
	    parse_code(MANIFEST_DOC("[{\"path\":\"f\",\"type\":\"file\",\"mode\":420,"
				    "\"mtime\":1,\"size\":3,\"sha256\":\"" HASH_A "\"}]")),
	    STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"f\",\"type\":\"file\",\"mode\":420,"
						 "\"mtime\":1,\"size\":-3,\"zsize\":1,\"sha256\":"
						 "\"" HASH_A "\"}]")),
			 STORK_EFORMAT);
	/* Members that belong to another type. */
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"usr\",\"type\":\"dir\",\"mode\":"
						 "493,\"mtime\":1,\"size\":0}]")),
			 STORK_EFORMAT);
	ck_assert_str_eq(stork_error_detail(),
			 "t.json: files[0] \"usr\": \"size\" is not allowed for a dir");
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"usr\",\"type\":\"dir\",\"mode\":"
						 "493,\"mtime\":1,\"target\":\"x\"}]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC(
			     "[{\"path\":\"l\",\"type\":\"symlink\",\"mode\":"
			     "511,\"mtime\":1,\"target\":\"x\",\"sha256\":\"" HASH_A "\"}]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"f\",\"type\":\"file\",\"mode\":420,"
						 "\"mtime\":1,\"size\":3,\"zsize\":1,\"sha256\":"
						 "\"" HASH_A "\",\"target\":\"x\"}]")),
			 STORK_EFORMAT);
	/* Symlink targets. */
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"l\",\"type\":\"symlink\",\"mode\":"
						 "511,\"mtime\":1}]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"l\",\"type\":\"symlink\",\"mode\":"
						 "511,\"mtime\":1,\"target\":\"\"}]")),
			 STORK_EHOSTILE);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"l\",\"type\":\"symlink\",\"mode\":"
						 "511,\"mtime\":1,\"target\":\"a\\u001bb\"}]")),
			 STORK_EHOSTILE);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[{\"path\":\"l\",\"type\":\"symlink\",\"mode\":"
						 "511,\"mtime\":1,\"target\":7}]")),
			 STORK_EFORMAT);
}
END_TEST

START_TEST(manifest_parse_refuses_hostile_and_unordered_trees)
{
	/* Paths. */
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[" FILE_AT("../x") "]")), STORK_EHOSTILE);
	ck_assert_str_eq(stork_error_detail(),
			 "t.json: files[0] \"../x\": path leaves the package root");
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[" FILE_AT("/etc/passwd") "]")), STORK_EHOSTILE);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[" FILE_AT("a\\u0001b") "]")), STORK_EHOSTILE);
	ck_assert_str_eq(stork_error_detail(), "t.json: files[0] \"a\\x01b\": control character");
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[" DIR_USR "," FILE_AT("usr/./x") "]")),
			 STORK_EHOSTILE);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[" DIR_USR "," FILE_AT("usr//x") "]")),
			 STORK_EHOSTILE);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[" DIR_USR "," FILE_AT("usr/") "]")),
			 STORK_EHOSTILE);
	/* Order, duplicates, parents: what finish would have fixed or refused. */
	ck_assert_int_eq(
	    parse_code(MANIFEST_DOC("[" DIR_USR "," FILE_AT("usr/b") "," FILE_AT("usr/a") "]")),
	    STORK_EFORMAT);
	ck_assert_str_eq(stork_error_detail(),
			 "t.json: files[2] \"usr/a\": not sorted (comes after \"usr/b\")");
	ck_assert_int_eq(
	    parse_code(MANIFEST_DOC("[" DIR_USR "," FILE_AT("usr/a") "," FILE_AT("usr/a") "]")),
	    STORK_EHOSTILE);
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[" FILE_AT("usr/a") "]")), STORK_EFORMAT);
	ck_assert_str_eq(stork_error_detail(),
			 "t.json: files[0] \"usr/a\": parent \"usr\" is missing");
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[" DIR_USR "," FILE_AT("usr/a/b") "]")),
			 STORK_EFORMAT);
	ck_assert_int_eq(
	    parse_code(MANIFEST_DOC("[{\"path\":\"usr\",\"type\":\"symlink\","
				    "\"mode\":511,\"mtime\":1,\"target\":\"/etc\"},"
				    "{\"path\":\"usr/x\",\"type\":\"dir\",\"mode\":493,"
				    "\"mtime\":1}]")),
	    STORK_EHOSTILE);
	ck_assert_str_eq(stork_error_detail(),
			 "t.json: files[1] \"usr/x\": parent \"usr\" is a symlink");
	ck_assert_int_eq(parse_code(MANIFEST_DOC("[" FILE_AT("usr") "," FILE_AT("usr/x") "]")),
			 STORK_EHOSTILE);
	ck_assert_int_eq(
	    parse_code(MANIFEST_DOC("[" DIR_USR "," FILE_AT("usr-a") "," FILE_AT("usr/a") "]")), 0);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */

static Suite *verify_suite(void)
{
	Suite *s = suite_create("verify");
	TCase *tc;

	tc = tcase_create("errors");
	tcase_add_test(tc, strerror_names_every_stork_code_and_errno);
	tcase_add_test(tc, error_detail_is_set_prefixed_and_cleared);
	tcase_add_test(tc, error_detail_truncates_at_16k_without_splitting_utf8);
	tcase_add_test(tc, error_detail_keeps_the_problem_after_two_long_paths);
	tcase_add_test(tc, error_text_says_the_error_once);
	tcase_add_test(tc, bidi_controls_are_found_and_named);
	tcase_add_test(tc, sizes_read_as_text);
	tcase_add_test(tc, publish_refuses_versions_dpkg_refuses);
	tcase_add_test(tc, write_atomic_writes_whole_file_with_exact_mode);
	tcase_add_test(tc, write_all_writes_everything_or_says_why);
	suite_add_tcase(s, tc);

	tc = tcase_create("hash");
	tcase_add_test(tc, sha256_matches_fips_vectors);
	tcase_add_test(tc, sha256_streaming_equals_one_shot);
	tcase_add_test(tc, unhex_accepts_exact_hex_only);
	suite_add_tcase(s, tc);

	tc = tcase_create("key");
	tcase_add_loop_test(tc, ed25519_signs_and_checks_rfc8032_vectors, 0,
			    (int)(sizeof(rfc_vectors) / sizeof(rfc_vectors[0])));
	tcase_add_test(tc, ed25519_wrong_key_does_not_verify);
	tcase_add_test(tc, key_from_raw_refuses_mismatched_public_half);
	tcase_add_test(tc, key_id_is_sha256_of_canonical_tuf_key_object);
	tcase_add_test(tc, key_save_and_load_round_trip);
	tcase_add_test(tc, key_load_private_refuses_group_readable_file);
	tcase_add_test(tc, key_load_public_reads_tuf_json_key);
	tcase_add_test(tc, key_from_json_checks_every_field);
	suite_add_tcase(s, tc);

	tc = tcase_create("cjson");
	tcase_add_test(tc, cjson_escapes_only_quote_and_backslash);
	tcase_add_test(tc, cjson_sorts_keys_by_utf8_bytes);
	tcase_add_test(tc, cjson_writes_nested_values_without_whitespace);
	tcase_add_test(tc, cjson_writes_integers_exactly);
	tcase_add_test(tc, cjson_rejects_reals_and_invalid_utf8);
	tcase_add_test(tc, cjson_round_trip_is_deterministic);
	tcase_add_test(tc, json_parse_is_strict);
	suite_add_tcase(s, tc);

	tc = tcase_create("names");
	tcase_add_test(tc, package_names_follow_the_charset);
	tcase_add_test(tc, versions_follow_the_charset_and_refuse_latest);
	tcase_add_test(tc, role_names_are_lowercase_and_not_top_level);
	tcase_add_test(tc, name_patterns_allow_wildcards_only_in_place);
	tcase_add_test(tc, target_paths_split_back_into_name_and_version);
	tcase_add_test(tc, relpath_check_refuses_hostile_paths);
	tcase_add_test(tc, dir_source_refuses_hostile_paths);
	suite_add_tcase(s, tc);

	tc = tcase_create("manifest");
	tcase_add_test(tc, manifest_finish_sorts_and_adds_missing_parents);
	tcase_add_test(tc, manifest_dump_is_the_documented_canonical_json);
	tcase_add_test(tc, manifest_round_trips_through_dump_and_parse);
	tcase_add_test(tc, manifest_chunks_round_trip_and_are_checked);
	tcase_add_test(tc, manifest_add_refuses_hostile_paths);
	tcase_add_test(tc, manifest_finish_refuses_duplicates);
	tcase_add_test(tc, manifest_finish_refuses_paths_below_symlink_or_file);
	tcase_add_test(tc, manifest_add_depgroup_checks_alternatives);
	tcase_add_test(tc, manifest_parse_accepts_a_valid_document);
	tcase_add_test(tc, manifest_parse_refuses_bad_documents);
	tcase_add_test(tc, manifest_parse_refuses_bad_depends);
	tcase_add_test(tc, manifest_parse_refuses_bad_entries);
	tcase_add_test(tc, manifest_parse_refuses_hostile_and_unordered_trees);
	suite_add_tcase(s, tc);

	suite_add_tcase(s, tcase_verify_meta());
	suite_add_tcase(s, tcase_verify_repo());
	suite_add_tcase(s, tcase_verify_cache());
	suite_add_tcase(s, tcase_verify_policy());
	suite_add_tcase(s, tcase_verify_control());
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(verify_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
