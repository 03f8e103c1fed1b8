/* verify/policy_msg.c: how the policy parser says what is wrong: the error detail naming the
 * file, the line and the words read so far, and a guess at the keyword a typo meant.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "verify/error.h"
#include "verify/policy_int.h"

/* Words 0..n-1 of the line, joined by one space and quoted; a long one keeps its first and its
 * last word, since the last is the one the message is about. */
const char *policy_context(const struct parser *ps, size_t n, char *out, size_t size)
{
	char joined[POLICY_LINE_MAX + 1], first[64], last[TEXT_QUOTE_LEN / 2];
	size_t i, o = 0;

	if (n > ps->nw)
		n = ps->nw;
	for (i = 0; i < n; i++) {
		size_t len = strlen(ps->w[i]);

		if (o + len + 2 > sizeof(joined))
			break;
		if (i > 0)
			joined[o++] = ' ';
		memcpy(joined + o, ps->w[i], len);
		o += len;
	}
	joined[o] = '\0';
	if (n < 3 || o + 8 < size)
		return text_quote(joined, out, size);
	text_quote(ps->w[0], first, sizeof(first));
	text_quote(ps->w[n - 1], last, sizeof(last));
	snprintf(out, size, "%s ... %s", first, last);
	return out;
}

int policy_fail(const struct parser *ps, size_t nctx, const char *fmt, ...)
{
	char ctx[TEXT_QUOTE_LEN], msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (nctx > 0)
		stork_errorf("%s:%u: %s: %s", ps->fileq, ps->line,
			     policy_context(ps, nctx, ctx, sizeof(ctx)), msg);
	else
		stork_errorf("%s:%u: %s", ps->fileq, ps->line, msg);
	return STORK_EFORMAT;
}

/* Optimal string alignment distance, for words of at most SUGGEST_MAX bytes. */
static size_t distance(const char *a, const char *b)
{
	size_t d[SUGGEST_MAX + 1][SUGGEST_MAX + 1];
	size_t la = strlen(a), lb = strlen(b), i, j;

	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t best = d[i - 1][j - 1] + cost;

			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb];
}

const char *policy_suggest(const char *word, const char *const *cands, char *out, size_t size)
{
	const char *best = NULL;
	size_t i, bestd = 3;

	out[0] = '\0';
	if (strlen(word) > SUGGEST_MAX)
		return out;
	for (i = 0; cands[i]; i++) {
		size_t d = distance(word, cands[i]);

		/* a one-letter word is "close" to every short keyword: not a typo we can see */
		if (d < bestd && d < strlen(cands[i]) && d < strlen(word)) {
			best = cands[i];
			bestd = d;
		}
	}
	if (best)
		snprintf(out, size, " (did you mean \"%s\"?)", best);
	return out;
}
