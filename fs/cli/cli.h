/* fs/cli/cli.h: shared pieces of the `stork` command-line tool. The tool is a thin layer:
 * it parses arguments, calls the modules and prints; the work happens in verify/, store/,
 * fetch/ and fs/. */
#ifndef STORKFS_CLI_H
#define STORKFS_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "fs/fs.h"

/* Documented exit codes (README.md). */
enum {
	CLI_OK = 0,
	CLI_VERIFY_FAILED = 1,
	CLI_USAGE = 2,	/* usage or input error */
	CLI_SYSTEM = 3, /* the system failed us: I/O, disk full, out of memory */
};

int cmd_keygen(int argc, char **argv);
int cmd_repo(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_why(int argc, char **argv);
int cmd_resolve(int argc, char **argv);
int cmd_install(int argc, char **argv);
int cmd_remove(int argc, char **argv);
int cmd_upgrade(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_prefetch(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_control(int argc, char **argv);
/** Write REPODIR's browse site (verify_repo_site) after a publisher command changed the
 * repository; keydir may be NULL; only (may be NULL: all) the one package whose page changed. A
 * failure is a warning naming cmd (the change itself is committed): "stork CMD: warning: the browse
 * site was not updated: ...". Prints a line on success unless quiet. @return 0; the error (already
 * told). */
int cli_site_update(const char *cmd, const char *repodir, const char *keydir, const char *only,
		    bool quiet);
/** `stork status STOREDIR`: what the node store holds. @return an exit code. */
int cli_store_status(const char *dir);

/** Print "stork CMD: " followed by the error detail the failing call left, or by the printf
 * arguments and the decoded error when it left none. */
void cli_fail(const char *cmd, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** Print "stork CMD: message" (usage errors). Returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Exit code for an error from an input-handling command (publish, repo): STORK_E* codes are
 * input errors (2), -ENOENT/-EACCES/-EEXIST/-ENOTDIR/-EINVAL/-EPERM too, other -errno are
 * system errors (3). */
int cli_exit_input(int err);
/** Exit code for an error while verifying: STORK_E* codes are verification failures (1),
 * -ENOENT of a metadata file too; -EACCES/-EPERM are input errors (2) as everywhere; other
 * -errno are system errors (3). */
int cli_exit_verify(int err);
/** Exit code for an error of the system: -EACCES/-EPERM (a file or directory this user may
 * not read or write) are input errors (2) from every command (README.md, "Exit codes");
 * anything else 3. */
int cli_exit_system(int err);

/** Parse a non-negative decimal integer with an optional K/M/G/T suffix (powers of 1024) or,
 * for durations, s/m/h/d. @return 0; -EINVAL. */
int cli_parse_size(const char *s, uint64_t *ret);
int cli_parse_duration(const char *s, int64_t *ret);

/** Read a whole (small) file. @return 0; -errno; STORK_ETOOBIG past maxlen. */
int cli_read_file(const char *path, size_t maxlen, uint8_t **ret_buf, size_t *ret_len);

/** Print a byte count for people: "12.3 MiB". Returns buf. */
const char *cli_bytes(uint64_t n, char buf[32]);

/* The options of the commands that fetch into a node store (`stork extract`, `stork
 * prefetch`): put CLI_NODE_LONGOPTS in the getopt_long table and CLI_NODE_SHORTOPTS in the
 * short string, CLI_NODE_HELP in the help text, and hand every option the command does not
 * know itself to cli_node_option. */
#define CLI_NODE_SHORTOPTS "r:s:c:C:L:T:t:a:P:R:p:Q:x:N:M:"
#define CLI_NODE_LONGOPTS                                                                          \
	{"root", required_argument, NULL, 'r'}, {"store", required_argument, NULL, 's'},           \
	    {"cacert", required_argument, NULL, 'c'},                                              \
	    {"connect-timeout", required_argument, NULL, 'C'},                                     \
	    {"low-speed-limit", required_argument, NULL, 'L'},                                     \
	    {"low-speed-time", required_argument, NULL, 'T'},                                      \
	    {"timeout", required_argument, NULL, 't'}, {"at", required_argument, NULL, 'a'},       \
	    {"proxy", required_argument, NULL, 'P'},                                               \
	    {"proxy-retry", required_argument, NULL, 'R'}, {"peer", required_argument, NULL, 'p'}, \
	    {"peer-retry", required_argument, NULL, 'Q'}, {"netrc", required_argument, NULL, 'N'}, \
	    {"store-max", required_argument, NULL, 'M'},                                           \
	{                                                                                          \
		"exec", required_argument, NULL, 'x'                                               \
	}
#define CLI_NODE_HELP                                                                              \
	"  --cacert FILE            PEM CA bundle for https (e.g. a self-signed test CA)\n"        \
	"  --connect-timeout SECS   per connection attempt (default 10)\n"                         \
	"  --low-speed-limit BYTES  abort a transfer slower than this... (default 1024 B/s)\n"     \
	"  --low-speed-time SECS    ...for this long (default 10)\n"                               \
	"  --timeout SECS           cap on one whole transfer (default none)\n"                    \
	"  --proxy CHAIN            caching proxies for http(s) mirrors, CernVM-FS syntax:\n"      \
	"                           'http://p1:3128|http://p2:3128;DIRECT' ('|' = same group,\n"   \
	"                           load-balanced; ';' = next group; DIRECT = no proxy)\n"         \
	"  --proxy-retry SECS       skip a failed proxy this long (default 300)\n"                 \
	"  --peer URL[,URL...]      other nodes' stores (objects/ served over http), tried "       \
	"first\n"                                                                                  \
	"  --peer-retry SECS        skip a failed peer this long (default 300)\n"                  \
	"  --netrc FILE             user names and passwords of http(s) mirrors and peers\n"       \
	"                           (curl's netrc format, mode 600): a password in a URL shows\n"  \
	"                           in ps\n"                                                       \
	"  --exec SCHEME=COMMAND    fetch SCHEME: URLs with COMMAND (fetch/README.md; "            \
	"repeatable)\n"                                                                            \
	"  --at UNIXTIME            check metadata expiry as of that time\n"                       \
	"  --store-max SIZE         set the store's quota (K, M, G, T; 0: none), kept in the\n"    \
	"                           store for every user of it (store/README.md)\n"

#define CLI_NODE_MAX_EXEC      8
#define CLI_NODE_MAX_PEERS     64
#define CLI_NODE_MAX_PEER_TEXT 4096

struct cli_node {
	const char *rootfile; /* --root */
	const char *storedir; /* --store */
	uint64_t store_max;   /* --store-max, when store_max_set */
	bool store_max_set;
	struct fs_repo_opts ro; /* the rest; ro.fetch.exec points into exec, .peers into peers */
	const char *exec[CLI_NODE_MAX_EXEC + 1];
	size_t nexec;
	const char *peers[CLI_NODE_MAX_PEERS]; /* --peer URL[,URL...], split: into peer_text */
	char peer_text[CLI_NODE_MAX_PEER_TEXT];
};

/** A cli_node with the commands' defaults (one operation: a failed mirror stays skipped). */
void cli_node_init(struct cli_node *n);
/** Take getopt's option c (argument arg) if it is a node option. @return 1 taken; 0 not a
 * node option; -1 a bad value (the usage error is printed, naming cmd). */
int cli_node_option(const char *cmd, int c, const char *arg, struct cli_node *n);

/** Read the pinned root, open the node store and the repository over mirrors, and refresh
 * its metadata (a refresh that falls back to what the store holds is a warning on stderr).
 * Failures are told as `stork CMD: ...`. @return CLI_OK with *ret_s and *ret_repo (close
 * both); else the exit code, nothing left open. */
int cli_node_open(const char *cmd, const struct cli_node *n, const char *const *mirrors,
		  size_t nmirrors, struct store **ret_s, struct fs_repo **ret_repo);
/** Close what cli_node_open opened: the repository, then the store it reads. NULL is fine. */
void cli_node_close(struct store *s, struct fs_repo *repo);

/* The signing options of the publisher's commands (`stork publish`, `stork repo`): put
 * CLI_SIGNER_LONGOPTS in the getopt_long table and CLI_SIGNER_SHORTOPTS in the short string,
 * and hand every option the command does not know itself to cli_signer_option. */
#define CLI_SIGNER_SHORTOPTS "k:K:"
#define CLI_SIGNER_LONGOPTS                                                                        \
	{"keys", required_argument, NULL, 'k'},                                                    \
	{                                                                                          \
		"key", required_argument, NULL, 'K'                                                \
	}

struct cli_signer {
	const char *keydir;  /* --keys: the repository's key directory */
	const char *keyfile; /* --key: a publisher's private key */
};

/** Take getopt's option c (argument arg) if it is a signing option. @return 1 taken; 0 not. */
int cli_signer_option(int c, const char *arg, struct cli_signer *k);

/* The options of the commands that read a repository as a client (`stork verify`, `ls`,
 * `why`, `resolve`): --root, --at, --cacert, --netrc, --policy, then REPO and more. */
struct cli_client_args {
	const char *root;
	const char *repo;
	char shown[1024];    /* repo for messages: no password (fetch_url_shown) */
	const char *name;    /* the positional after REPO, if any */
	const char *version; /* the one after that, if any */
	const char *policy;
	time_t at;
	struct fetch_opts fo;
};

/** Parse argv into *a: the options above and min_pos..max_pos positionals (REPO first;
 * positionals names those after it in the usage error). --policy is a usage error unless
 * policy_allowed. *ret_exit with *ret_code when the command ends here (help, usage error). */
void cli_client_args_parse(const char *cmd, const char *help, int argc, char **argv, int min_pos,
			   int max_pos, const char *positionals, bool policy_allowed,
			   struct cli_client_args *a, bool *ret_exit, int *ret_code);

/** Read the pinned root a->root, open a->repo as a source and run the TUF workflow (failures
 * told as `stork CMD: ...`). @return CLI_OK with the client, the source (fetch_source_fini)
 * and the root's bytes (free); else the exit code, nothing left open. */
int cli_client_open(const char *cmd, const struct cli_client_args *a, struct verify_source *src,
		    struct verify_client **ret_c, uint8_t **ret_root, size_t *ret_rootlen);

/* A progress bar on stderr, drawn only when stderr is a terminal and the work is large. */
struct cli_progress {
	const char *label;
	bool active;
	uint64_t last_drawn;
};
void cli_progress_update(void *ctx, uint64_t done, uint64_t total);
void cli_progress_end(struct cli_progress *p);

#endif
