/* fs/cli/cli.h: shared pieces of the `stork` command-line tool. The tool is a thin layer:
 * it parses arguments, calls the modules and prints; the work happens in verify/, store/,
 * fetch/ and fs/. */
#ifndef STORKFS_CLI_H
#define STORKFS_CLI_H

#include <stdbool.h>
#include <stdint.h>

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
int cmd_extract(int argc, char **argv);
int cmd_prefetch(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_status(int argc, char **argv);
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
 * -ENOENT of a metadata file too; other -errno are system errors (3). */
int cli_exit_verify(int err);

/** Parse a non-negative decimal integer with an optional K/M/G/T suffix (powers of 1024) or,
 * for durations, s/m/h/d. @return 0; -EINVAL. */
int cli_parse_size(const char *s, uint64_t *ret);
int cli_parse_duration(const char *s, int64_t *ret);

/** Read a whole (small) file. @return 0; -errno; STORK_ETOOBIG past maxlen. */
int cli_read_file(const char *path, size_t maxlen, uint8_t **ret_buf, size_t *ret_len);

/** Print a byte count for people: "12.3 MiB". Returns buf. */
const char *cli_bytes(uint64_t n, char buf[32]);

/* A progress bar on stderr, drawn only when stderr is a terminal and the work is large. */
struct cli_progress {
	const char *label;
	bool active;
	uint64_t last_drawn;
};
void cli_progress_update(void *ctx, uint64_t done, uint64_t total);
void cli_progress_end(struct cli_progress *p);

#endif
