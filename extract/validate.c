/* Validation: walks the model's JSON answer alongside the schema, normalises each value (text
 * steps, decimals to canonical strings, dates to ISO 8601), checks type, required, pattern, enum
 * and bounds, then the schema's cross-field rules, then scores each value from its tokens'
 * probabilities and decides the status.
 *
 * Invariants: decimals never pass through a float (rules compute on 128-bit fixed point with nine
 * fraction digits); a rule that reads an absent or unparseable value is skipped, not failed (the
 * value's own check reports it, and optional sections of a schema stay null without noise).
 * Does not decode, prompt or write files. */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "validate.h"

static const char *const status_names[] = {
	[EX_STATUS_OK] = "ok",
	[EX_STATUS_NEEDS_REVIEW] = "needs_review",
	[EX_STATUS_FAILED] = "failed",
};
static_assert(sizeof status_names / sizeof status_names[0] == EX_STATUS_COUNT, "status names");

const char *ex_status_name(enum ex_status status)
{
	return status < EX_STATUS_COUNT ? status_names[status] : "?";
}

double ex_confidence(const float *logprobs, size_t n)
{
	if (n == 0)
		return 0;
	float lo = logprobs[0];
	for (size_t k = 1; k < n; k++)
		lo = logprobs[k] < lo ? logprobs[k] : lo;
	return exp((double)lo);
}

/* ---- Decimals -------------------------------------------------------------------------------- */

static bool is_space(gunichar c)
{
	return g_unichar_isspace(c) || c == 0x200b /* zero-width space */;
}

/* Currency signs and the yuan character that surround amounts on invoices. */
static bool is_currency(gunichar c)
{
	return c == '$' || c == 0xa5 /* ¥ */ || c == 0xffe5 /* ￥ */ || c == 0x20ac /* € */ ||
	       c == 0xa3 /* £ */ || c == 0x5143 /* 元 */;
}

/* Full-width digits and punctuation (common in Chinese documents) read as ASCII. */
static gunichar narrow(gunichar c)
{
	if (c >= 0xff01 && c <= 0xff5e)
		return c - 0xff01 + 0x21;
	return c;
}

int ex_decimal_normalize(const char *text, enum ex_locale locale, char *out, size_t out_size,
			 const char **why)
{
	glong n;
	gunichar *u = g_utf8_to_ucs4_fast(text, -1, &n);
	size_t a = 0, b = (size_t)n;
	while (a < b && (is_space(u[a]) || is_currency(u[a])))
		a++;
	while (b > a && (is_space(u[b - 1]) || is_currency(u[b - 1])))
		b--;
	bool negative = false;
	if (a < b && (narrow(u[a]) == '-' || narrow(u[a]) == '+' || u[a] == 0x2212)) {
		negative = narrow(u[a]) != '+';
		for (a++; a < b && (is_space(u[a]) || is_currency(u[a]));)
			a++;
	}
	/* Classes: digits, '.', ',' and 'g' for a grouping mark that can only be one (a space or
	 * an apostrophe, as in "1 296,00" and "1'296.00"). */
	char s[80];
	size_t len = 0;
	*why = NULL;
	for (size_t k = a; k < b && !*why; k++) {
		gunichar c = narrow(u[k]);
		if (len + 1 >= sizeof s)
			*why = "too many digits";
		else if ((c >= '0' && c <= '9') || c == '.' || c == ',')
			s[len++] = (char)c;
		else if (is_space(c) || c == '\'' || c == 0x2019)
			s[len++] = 'g';
		else
			*why = "not a number";
	}
	g_free(u);
	s[len] = '\0';
	if (*why)
		return -EINVAL;

	const char *last_dot = strrchr(s, '.'), *last_comma = strrchr(s, ',');
	size_t dots = 0, commas = 0;
	for (size_t k = 0; k < len; k++) {
		dots += s[k] == '.';
		commas += s[k] == ',';
	}
	/* The decimal separator: the later of '.' and ',' when both appear; a lone one unless it
	 * is the locale's grouping mark followed by exactly three digits; none when one kind repeats. */
	char dec = 0;
	if (dots && commas) {
		dec = last_dot > last_comma ? '.' : ',';
	} else if (dots == 1 || commas == 1) {
		const char *p = dots ? last_dot : last_comma;
		char grouping = locale == EX_LOCALE_EU ? '.' : ',';
		size_t after = strlen(p + 1);
		bool digits_after = strspn(p + 1, "0123456789") == after;
		dec = *p == grouping && after == 3 && digits_after && p > s ? 0 : *p;
	}
	if ((dec == '.' && dots > 1) || (dec == ',' && commas > 1)) {
		*why = "more than one decimal separator";
		return -EINVAL;
	}
	const char *sep = dec ? strchr(s, dec) : s + len;
	const char *frac = dec ? sep + 1 : sep;
	if (strspn(frac, "0123456789") != strlen(frac)) {
		*why = "digit grouping after the decimal separator";
		return -EINVAL;
	}
	/* Integer part: groups split by grouping marks; the first has 1-3 digits, the others 3. */
	char digits[80];
	size_t nd = 0, group = 0, groups = 0;
	bool bad_group = false;
	for (const char *p = s; p < sep; p++) {
		if (*p >= '0' && *p <= '9') {
			digits[nd++] = *p;
			group++;
			continue;
		}
		bad_group |= group == 0 || (groups == 0 ? group > 3 : group != 3);
		groups++;
		group = 0;
	}
	if (groups && (group != 3 || bad_group)) {
		*why = "misplaced digit grouping";
		return -EINVAL;
	}
	if (nd == 0 && *frac == '\0') {
		*why = "no digits";
		return -EINVAL;
	}
	size_t lead = 0;
	while (lead + 1 < nd && digits[lead] == '0')
		lead++;
	bool zero = strspn(digits + lead, "0") == nd - lead && strspn(frac, "0") == strlen(frac);
	int w = snprintf(out, out_size, "%s%.*s%s%s", negative && !zero ? "-" : "",
			 nd ? (int)(nd - lead) : 1, nd ? digits + lead : "0", *frac ? "." : "",
			 frac);
	if (w < 0 || (size_t)w >= out_size) {
		*why = "too many digits";
		return -EINVAL;
	}
	return 0;
}

/* Fixed point for rules: value * 10^9 in 128 bits, about 29 integer digits. */
typedef __int128 fixed;
#define FIXED_ONE ((fixed)1000000000)

/* A canonical decimal to fixed point; fraction digits past the ninth are dropped. */
static bool fixed_parse(const char *s, fixed *out)
{
	bool negative = *s == '-';
	s += negative;
	fixed v = 0;
	for (; isdigit((unsigned char)*s); s++)
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *s - '0', &v) ||
		    v > (fixed)1e28)
			return false;
	fixed f = 0, scale = FIXED_ONE;
	if (*s == '.')
		for (s++; isdigit((unsigned char)*s); s++)
			if (scale > 1) {
				scale /= 10;
				f += (*s - '0') * scale;
			}
	if (*s)
		return false;
	v = v * FIXED_ONE + f;
	*out = negative ? -v : v;
	return true;
}

static void fixed_format(fixed v, char *buf, size_t size)
{
	bool negative = v < 0;
	unsigned __int128 m = negative ? -(unsigned __int128)v : (unsigned __int128)v;
	unsigned __int128 ip = m / FIXED_ONE;
	unsigned long long fp = (unsigned long long)(m % FIXED_ONE);
	char digits[48];
	size_t n = 0;
	do {
		digits[n++] = (char)('0' + (int)(ip % 10));
		ip /= 10;
	} while (ip);
	char frac[16];
	snprintf(frac, sizeof frac, ".%09llu", fp);
	size_t fl = strlen(frac);
	while (fl > 1 && frac[fl - 1] == '0')
		frac[--fl] = '\0';
	size_t used = 0;
	if (negative && used + 1 < size)
		buf[used++] = '-';
	while (n && used + 1 < size)
		buf[used++] = digits[--n];
	buf[used] = '\0';
	if (fl > 1)
		snprintf(buf + used, size - used, "%s", frac);
}

/* The shortest fixed-notation text that reads back as the same double. */
static void real_text(double d, char *buf, size_t size)
{
	for (int prec = 0; prec <= 17; prec++) {
		snprintf(buf, size, "%.*f", prec, d);
		if (strtod(buf, NULL) == d)
			return;
	}
}

/* ---- Dates ----------------------------------------------------------------------------------- */

static int days_in_month(int y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

static int month_from_name(const char *w)
{
	static const char *const names[12] = { "january",   "february", "march",    "april",
					       "may",       "june",     "july",     "august",
					       "september", "october",  "november", "december" };
	size_t n = strlen(w);
	if (strcmp(w, "sept") == 0)
		return 9;
	for (int k = 0; k < 12; k++)
		if (strcmp(names[k], w) == 0 || (n == 3 && strncmp(names[k], w, 3) == 0))
			return k + 1;
	return 0;
}

enum { TOK_NUM, TOK_MONTH };
struct date_tok {
	int kind;
	int value;
	int digits;
};

int ex_date_normalize(const char *text, enum ex_locale locale, char out[11], const char **why)
{
	glong n;
	gunichar *u = g_utf8_to_ucs4_fast(text, -1, &n);
	struct date_tok t[3];
	int nt = 0;
	*why = NULL;
	for (glong k = 0; k < n && !*why;) {
		gunichar c = narrow(u[k]);
		if (c >= '0' && c <= '9') {
			int v = 0, d = 0;
			for (; k < n && (c = narrow(u[k])) >= '0' && c <= '9'; k++, d++)
				v = d < 9 ? v * 10 + (int)(c - '0') : v;
			if (nt == 3)
				*why = "not a date";
			else
				t[nt++] = (struct date_tok){ TOK_NUM, v, d };
		} else if (c < 0x80 && isalpha((int)c)) {
			char w[16];
			size_t wl = 0;
			for (; k < n && narrow(u[k]) < 0x80 && isalpha((int)narrow(u[k])); k++)
				if (wl + 1 < sizeof w)
					w[wl++] = (char)tolower((int)narrow(u[k]));
			w[wl] = '\0';
			bool ordinal = nt > 0 && t[nt - 1].kind == TOK_NUM &&
				       (!strcmp(w, "st") || !strcmp(w, "nd") || !strcmp(w, "rd") ||
					!strcmp(w, "th"));
			int m = ordinal ? 0 : month_from_name(w);
			if (!ordinal && (!m || nt == 3))
				*why = "not a date";
			else if (!ordinal)
				t[nt++] = (struct date_tok){ TOK_MONTH, m, 0 };
		} else if (is_space(c) || c == '-' || c == '/' || c == '.' || c == ',' ||
			   c == 0x5e74 /* 年 */ || c == 0x6708 /* 月 */ || c == 0x65e5 /* 日 */ ||
			   c == 0x53f7 /* 号 */) {
			k++;
		} else {
			*why = "not a date";
		}
	}
	g_free(u);
	if (*why)
		return -EINVAL;

	int y = 0, m = 0, d = 0;
	bool n0 = nt > 0 && t[0].kind == TOK_NUM, n1 = nt > 1 && t[1].kind == TOK_NUM,
	     n2 = nt > 2 && t[2].kind == TOK_NUM;
	if (nt == 1 && n0 && t[0].digits == 8) { /* 20240315 */
		y = t[0].value / 10000;
		m = t[0].value / 100 % 100;
		d = t[0].value % 100;
	} else if (nt == 3 && n0 && n1 && n2 && t[0].digits == 4 && t[1].digits <= 2 &&
		   t[2].digits <= 2) { /* 2024-03-15, 2024/3/15, 2024年3月15日 */
		y = t[0].value;
		m = t[1].value;
		d = t[2].value;
	} else if (nt == 3 && n0 && n1 && n2 && t[0].digits <= 2 && t[1].digits <= 2 &&
		   t[2].digits == 4) { /* 15.03.2024, 03/15/2024 */
		y = t[2].value;
		int p = t[0].value, q = t[1].value;
		if (locale == EX_LOCALE_EU || (locale != EX_LOCALE_US && p > 12 && q <= 12)) {
			d = p;
			m = q;
		} else if (locale == EX_LOCALE_US || (q > 12 && p <= 12) || p == q) {
			m = p;
			d = q;
		} else if (p > 12 && q > 12) {
			*why = "no such day";
			return -EINVAL;
		} else {
			*why = "ambiguous day and month: set the schema's locale to eu or us";
			return -EINVAL;
		}
	} else if (nt == 3 && n0 && !n1 && n2 && t[0].digits <= 2 && t[2].digits == 4) {
		d = t[0].value; /* 15 March 2024 */
		m = t[1].value;
		y = t[2].value;
	} else if (nt == 3 && !n0 && n1 && n2 && t[1].digits <= 2 && t[2].digits == 4) {
		m = t[0].value; /* March 15, 2024 */
		d = t[1].value;
		y = t[2].value;
	} else {
		*why = "not a date";
		return -EINVAL;
	}
	if (y < 1000 || y > 9999 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) {
		*why = "no such day";
		return -EINVAL;
	}
	snprintf(out, 11, "%04d-%02d-%02d", y % 10000, m % 100, d % 100);
	return 0;
}

/* ---- The walk -------------------------------------------------------------------------------- */

struct array_len {
	char *path; /* concrete path of an array (not inside another array) */
	size_t n;
};

struct vctx {
	const struct ex_schema *schema;
	struct ex_validation *v;
	size_t cap;
	struct array_len *arrays;
	size_t n_arrays;
	bool oom;
};

/* A value as a message quotes it: a value may be up to the grammar's max_value_bytes long, and
 * quoted whole it would push the reason out of the message. */
enum { QUOTE_BYTES = 80 };
struct quote {
	char s[QUOTE_BYTES + sizeof "…"];
};

static const char *quote(const char *text, struct quote *q)
{
	size_t len = strlen(text);
	if (len <= QUOTE_BYTES)
		return text;
	size_t cut = QUOTE_BYTES;
	while (cut > 0 && ((unsigned char)text[cut] & 0xc0) == 0x80)
		cut--; /* back to the first byte of the character at the cut */
	memcpy(q->s, text, cut);
	memcpy(q->s + cut, "…", sizeof "…");
	return q->s;
}

static void add_error(struct vctx *c, struct ex_field_result *r, const char *reason,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void add_error(struct vctx *c, struct ex_field_result *r, const char *reason,
		      const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* A message cut at its size can end inside a character, and jansson refuses a string that
	 * is not UTF-8: keep the whole characters. */
	const char *end;
	if (!g_utf8_validate(msg, -1, &end))
		msg[end - msg] = '\0';
	r->valid = false;
	if (json_array_append_new(r->errors, json_string(msg)) < 0 ||
	    json_array_append_new(c->v->review, json_pack("{s:s, s:s, s:s}", "field", r->path,
							  "reason", reason, "message", msg)) < 0)
		c->oom = true;
}

static struct ex_field_result *new_result(struct vctx *c, const char *path,
					  const struct ex_field *f)
{
	struct ex_validation *v = c->v;
	if (v->n_fields == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;
		struct ex_field_result *grown = realloc(v->fields, cap * sizeof *grown);
		if (!grown) {
			c->oom = true;
			return NULL;
		}
		v->fields = grown;
		c->cap = cap;
	}
	struct ex_field_result *r = &v->fields[v->n_fields];
	*r = (struct ex_field_result){
		.path = strdup(path), .field = f, .valid = true, .errors = json_array()
	};
	if (!r->path || !r->errors) {
		free(r->path);
		json_decref(r->errors);
		c->oom = true;
		return NULL;
	}
	v->n_fields++;
	return r;
}

static const char *json_kind(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a real number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

/* The normalisation steps on a string; g_free the result. */
static char *normalize_text(const char *s, unsigned steps)
{
	if (steps & (EX_NORM_TRIM | EX_NORM_REMOVE_SPACES)) {
		while (*s && is_space(g_utf8_get_char(s)))
			s = g_utf8_next_char(s);
	}
	GString *g = g_string_new(NULL);
	size_t keep = 0; /* length up to the last non-space character */
	for (const char *p = s; *p; p = g_utf8_next_char(p)) {
		gunichar ch = g_utf8_get_char(p);
		if ((steps & EX_NORM_REMOVE_SPACES) && is_space(ch))
			continue;
		g_string_append_unichar(g, ch);
		if (!is_space(ch))
			keep = g->len;
	}
	if (steps & EX_NORM_TRIM)
		g_string_truncate(g, keep);
	char *text = g_string_free(g, FALSE);
	if (steps & EX_NORM_UPPER_CASE) {
		char *up = g_utf8_strup(text, -1);
		g_free(text);
		text = up;
	}
	return text;
}

static void check_bounds(struct vctx *c, const struct ex_field *f, struct ex_field_result *r,
			 double x, const char *shown)
{
	if (f->has_min && x < f->min)
		add_error(c, r, "invalid", "%s is below the minimum %g", shown, f->min);
	if (f->has_max && x > f->max)
		add_error(c, r, "invalid", "%s is above the maximum %g", shown, f->max);
}

/* Checks and normalises one scalar value; returns the value to keep (a new reference). */
static json_t *check_scalar(struct vctx *c, const struct ex_field *f, json_t *raw,
			    struct ex_field_result *r)
{
	enum ex_locale locale = c->schema->locale;
	char *text =
		json_is_string(raw) ? normalize_text(json_string_value(raw), f->normalize) : NULL;
	json_t *out = NULL;
	const char *why = NULL;
	struct quote q;
	char buf[96];
	if (text && !*text) /* an empty answer is no answer */
		out = json_null();
	else if (f->type == EX_TYPE_STRING || f->type == EX_TYPE_ENUM || f->type == EX_TYPE_DATE) {
		if (!text) {
			add_error(c, r, "invalid", "expected a string, not %s", json_kind(raw));
		} else if (f->type == EX_TYPE_DATE) {
			if (ex_date_normalize(text, locale, buf, &why) == 0)
				out = json_string(buf);
			else
				add_error(c, r, "invalid", "'%s': %s", quote(text, &q), why);
		} else if (f->type == EX_TYPE_ENUM) {
			for (size_t k = 0; k < f->n_enum_values && !out; k++)
				if (strcmp(f->enum_values[k], text) == 0)
					out = json_string(f->enum_values[k]);
			for (size_t k = 0; k < f->n_enum_values && !out; k++)
				if (g_ascii_strcasecmp(f->enum_values[k], text) == 0)
					out = json_string(f->enum_values[k]);
			if (!out) {
				GString *list = g_string_new(NULL);
				for (size_t k = 0; k < f->n_enum_values; k++)
					g_string_append_printf(list, "%s%s", k ? ", " : "",
							       f->enum_values[k]);
				add_error(c, r, "invalid", "'%s' is not one of: %s",
					  quote(text, &q), list->str);
				g_string_free(list, TRUE);
			}
		} else {
			out = json_string(text);
			if (f->re) {
				pcre2_match_data *md =
					pcre2_match_data_create_from_pattern(f->re, NULL);
				int rc = md ? pcre2_match(f->re, (PCRE2_SPTR)text, strlen(text), 0,
							  0, md, NULL)
					    : PCRE2_ERROR_NOMEMORY;
				pcre2_match_data_free(md);
				if (rc == PCRE2_ERROR_NOMEMORY)
					c->oom = true;
				else if (rc < 0)
					add_error(c, r, "invalid",
						  "'%s' does not match the pattern %s",
						  quote(text, &q), f->pattern);
			}
		}
	} else if (f->type == EX_TYPE_BOOLEAN) {
		static const char *const yes[] = { "true", "yes", "y", "是" };
		static const char *const no[] = { "false", "no", "n", "否" };
		if (json_is_boolean(raw))
			out = json_incref(raw);
		for (size_t k = 0; text && k < 4 && !out; k++)
			if (g_ascii_strcasecmp(text, yes[k]) == 0 ||
			    g_ascii_strcasecmp(text, no[k]) == 0)
				out = json_boolean(g_ascii_strcasecmp(text, yes[k]) == 0);
		if (!out)
			add_error(c, r, "invalid", "expected true or false, not %s",
				  json_kind(raw));
	} else { /* integer, number, decimal */
		char canon[96];
		int rc = -EINVAL;
		if (json_is_integer(raw)) {
			snprintf(canon, sizeof canon, "%lld", (long long)json_integer_value(raw));
			rc = 0;
		} else if (json_is_real(raw)) {
			real_text(json_real_value(raw), canon, sizeof canon);
			rc = 0;
		} else if (text) {
			rc = ex_decimal_normalize(text, locale, canon, sizeof canon, &why);
		} else {
			why = "not a number";
		}
		if (rc < 0) {
			add_error(c, r, "invalid", "%s%s%s: %s", text ? "'" : "",
				  text ? quote(text, &q) : json_kind(raw), text ? "'" : "", why);
		} else if (f->type == EX_TYPE_DECIMAL) {
			out = json_string(canon);
		} else if (f->type == EX_TYPE_NUMBER) {
			out = json_real(strtod(canon, NULL));
		} else {
			char *dot = strchr(canon, '.');
			bool whole = !dot || strspn(dot + 1, "0") == strlen(dot + 1);
			if (dot && whole)
				*dot = '\0';
			errno = 0;
			long long i = whole ? strtoll(canon, NULL, 10) : 0;
			if (!whole || errno)
				add_error(c, r, "invalid", "%s is not a whole number in range",
					  canon);
			else
				out = json_integer(i);
		}
		if (out)
			check_bounds(c, f, r, strtod(canon, NULL), canon);
	}
	g_free(text);
	/* Keep what the model wrote when it could not be read, so a person sees it. */
	return out ? out : json_incref(raw);
}

static void walk_object(struct vctx *c, const struct ex_field *fields, size_t n_fields,
			const json_t *obj, const char *prefix, json_t *data, bool in_array);

/* One field's value (or its absence) at concrete `path`; returns the value to put in data. */
static json_t *walk_field(struct vctx *c, const struct ex_field *f, json_t *raw, const char *path,
			  bool in_array)
{
	bool absent = !raw || json_is_null(raw);
	if (!absent && f->type == EX_TYPE_OBJECT && json_is_object(raw)) {
		json_t *obj = json_object();
		char *prefix = g_strdup_printf("%s.", path);
		if (obj)
			walk_object(c, f->fields, f->n_fields, raw, prefix, obj, in_array);
		g_free(prefix);
		c->oom |= !obj;
		return obj;
	}
	if (!absent && f->type == EX_TYPE_ARRAY && json_is_array(raw)) {
		json_t *arr = json_array();
		size_t n = json_array_size(raw);
		for (size_t k = 0; arr && k < n; k++) {
			json_t *item = json_array_get(raw, k);
			char *ipath = g_strdup_printf("%s[%zu]", path, k);
			if (json_is_object(item)) {
				json_t *obj = json_object();
				char *prefix = g_strdup_printf("%s.", ipath);
				if (obj)
					walk_object(c, f->fields, f->n_fields, item, prefix, obj,
						    true);
				g_free(prefix);
				c->oom |= !obj || json_array_append_new(arr, obj) < 0;
			} else {
				struct ex_field_result *r = new_result(c, ipath, f);
				if (r) {
					r->value = json_incref(item);
					add_error(c, r, "invalid", "expected an object, not %s",
						  json_kind(item));
				}
			}
			g_free(ipath);
		}
		if (!in_array && arr) {
			struct array_len *grown =
				realloc(c->arrays, (c->n_arrays + 1) * sizeof *c->arrays);
			if (grown) {
				c->arrays = grown;
				c->arrays[c->n_arrays++] = (struct array_len){ strdup(path), n };
			}
			c->oom |= !grown || !c->arrays[c->n_arrays - 1].path;
		}
		c->oom |= !arr;
		if (arr && n == 0 && f->required) {
			struct ex_field_result *r = new_result(c, path, f);
			if (r) {
				r->value = json_incref(arr);
				add_error(c, r, "invalid", "required, but empty");
			}
		}
		return arr;
	}
	struct ex_field_result *r = new_result(c, path, f);
	if (!r)
		return json_null();
	if (absent) {
		r->value = json_null();
	} else if (f->type == EX_TYPE_OBJECT || f->type == EX_TYPE_ARRAY) {
		r->value = json_incref(raw);
		add_error(c, r, "invalid", "expected %s, not %s",
			  f->type == EX_TYPE_OBJECT ? "an object" : "an array", json_kind(raw));
	} else {
		r->value = check_scalar(c, f, raw, r);
	}
	if (json_is_null(r->value) && f->required)
		add_error(c, r, "invalid", "required, but missing");
	return json_incref(r->value);
}

static void walk_object(struct vctx *c, const struct ex_field *fields, size_t n_fields,
			const json_t *obj, const char *prefix, json_t *data, bool in_array)
{
	for (size_t k = 0; k < n_fields && !c->oom; k++) {
		const struct ex_field *f = &fields[k];
		char *path = g_strdup_printf("%s%s", prefix, f->name);
		json_t *value = walk_field(c, f, json_object_get(obj, f->name), path, in_array);
		c->oom |= json_object_set_new(data, f->name, value) < 0;
		g_free(path);
	}
	const char *key;
	json_t *value;
	json_object_foreach((json_t *)obj, key, value)
	{
		bool known = false;
		for (size_t k = 0; k < n_fields && !known; k++)
			known = strcmp(fields[k].name, key) == 0;
		if (known)
			continue;
		char *path = g_strdup_printf("%s%s", prefix, key);
		struct ex_field_result *r = new_result(c, path, NULL);
		if (r) {
			r->value = json_incref(value);
			add_error(c, r, "invalid", "not in the schema");
		}
		g_free(path);
	}
}

/* ---- Rules ----------------------------------------------------------------------------------- */

/* A schema path with its "[]" replaced by "[index]"; g_free it. */
static char *concrete(const char *schema_path, size_t index)
{
	const char *br = strstr(schema_path, "[]");
	if (!br)
		return g_strdup(schema_path);
	return g_strdup_printf("%.*s[%zu]%s", (int)(br - schema_path), schema_path, index, br + 2);
}

static struct ex_field_result *result_at(struct vctx *c, const char *path)
{
	for (size_t k = 0; k < c->v->n_fields; k++)
		if (strcmp(c->v->fields[k].path, path) == 0)
			return &c->v->fields[k];
	return NULL;
}

/* The element count of the array an "items[].x" path crosses; false when it is absent. */
static bool array_len(struct vctx *c, const char *schema_path, size_t *n)
{
	const char *br = strstr(schema_path, "[]");
	size_t len = (size_t)(br - schema_path);
	for (size_t k = 0; k < c->n_arrays; k++)
		if (strlen(c->arrays[k].path) == len &&
		    memcmp(c->arrays[k].path, schema_path, len) == 0) {
			*n = c->arrays[k].n;
			return true;
		}
	return false;
}

/* A value read as a decimal: numbers, and strings the decimal reader accepts. */
static bool value_fixed(struct vctx *c, const json_t *v, fixed *out)
{
	char buf[96];
	const char *why;
	if (json_is_integer(v)) {
		*out = (fixed)json_integer_value(v) * FIXED_ONE;
		return true;
	}
	if (json_is_real(v)) {
		real_text(json_real_value(v), buf, sizeof buf);
		return fixed_parse(buf, out);
	}
	return json_is_string(v) &&
	       ex_decimal_normalize(json_string_value(v), c->schema->locale, buf, sizeof buf,
				    &why) == 0 &&
	       fixed_parse(buf, out);
}

/* The fields a rule read, to mark when it fails. */
struct involved {
	struct ex_field_result *r[64];
	size_t n;
};

static void involve(struct involved *inv, struct ex_field_result *r)
{
	for (size_t k = 0; k < inv->n; k++)
		if (inv->r[k] == r)
			return;
	if (inv->n < sizeof inv->r / sizeof inv->r[0])
		inv->r[inv->n++] = r;
}

/* A field's value for a rule at element `index`; false when absent or unreadable. */
static bool read_field(struct vctx *c, const struct ex_field *f, size_t index, fixed *out,
		       struct involved *inv)
{
	char *path = concrete(f->path, index);
	struct ex_field_result *r = result_at(c, path);
	g_free(path);
	if (!r || !value_fixed(c, r->value, out))
		return false;
	involve(inv, r);
	return true;
}

/* Evaluates an expression at element `index`; false when a value is absent or it overflows. */
static bool eval(struct vctx *c, const struct ex_expr *e, size_t index, fixed *out,
		 struct involved *inv)
{
	fixed a, b;
	size_t n;
	switch (e->op) {
	case EX_EXPR_NUMBER:
		return fixed_parse(e->number, out);
	case EX_EXPR_FIELD:
		return read_field(c, e->field, index, out, inv);
	case EX_EXPR_SUM:
		/* No line items means none were printed, not that they add up to zero. */
		if (!array_len(c, e->field->path, &n) || n == 0)
			return false;
		*out = 0;
		for (size_t k = 0; k < n; k++)
			if (!read_field(c, e->field, k, &a, inv) ||
			    __builtin_add_overflow(*out, a, out))
				return false;
		return true;
	case EX_EXPR_NEG:
		if (!eval(c, e->a, index, &a, inv))
			return false;
		*out = -a;
		return true;
	default:
		break;
	}
	if (!eval(c, e->a, index, &a, inv) || !eval(c, e->b, index, &b, inv))
		return false;
	switch (e->op) {
	case EX_EXPR_ADD:
		return !__builtin_add_overflow(a, b, out);
	case EX_EXPR_SUB:
		return !__builtin_sub_overflow(a, b, out);
	case EX_EXPR_MUL:
		/* Both sides carry 10^9; dividing one factor's scale out first would lose digits. */
		if (__builtin_mul_overflow(a, b, out))
			return false;
		*out /= FIXED_ONE;
		return true;
	default:
		return false;
	}
}

static void rule_failed(struct vctx *c, const struct ex_rule *rule, const struct involved *inv,
			bool per_element, size_t index, const char *detail)
{
	char where[64] = "";
	if (per_element)
		snprintf(where, sizeof where, " for %s[%zu]", rule->each->path, index);
	for (size_t k = 0; k < inv->n; k++)
		add_error(c, inv->r[k], "rule", "rule '%s' fails%s: %s", rule->text, where, detail);
}

static void check_arithmetic(struct vctx *c, const struct ex_rule *rule, size_t index)
{
	struct involved inv = { .n = 0 };
	fixed l, r, tol;
	if (!eval(c, rule->lhs, index, &l, &inv) || !eval(c, rule->rhs, index, &r, &inv) ||
	    !fixed_parse(rule->tolerance, &tol))
		return;
	fixed diff; /* l - r; a difference too large to represent is not within tolerance */
	bool huge = __builtin_sub_overflow(l, r, &diff);
	bool ok = rule->cmp == EX_CMP_EQ   ? !huge && diff <= tol && -diff <= tol
		  : rule->cmp == EX_CMP_LE ? (huge ? l < r : diff <= tol)
					   : (huge ? l > r : -diff <= tol);
	if (ok)
		return;
	char ls[64], rs[64], detail[200];
	fixed_format(l, ls, sizeof ls);
	fixed_format(r, rs, sizeof rs);
	snprintf(detail, sizeof detail, "left side %s, right side %s (tolerance %s)", ls, rs,
		 rule->tolerance);
	rule_failed(c, rule, &inv, rule->each != NULL, index, detail);
}

static void check_checksum(struct vctx *c, const struct ex_rule *rule, size_t index)
{
	char *path = concrete(rule->field->path, index);
	struct ex_field_result *r = result_at(c, path);
	g_free(path);
	if (!r || !json_is_string(r->value) || rule->checksum->valid(json_string_value(r->value)))
		return;
	struct involved inv = { .r = { r }, .n = 1 };
	struct quote q;
	char detail[200];
	snprintf(detail, sizeof detail, "'%s' fails the %s check",
		 quote(json_string_value(r->value), &q), rule->checksum->description);
	rule_failed(c, rule, &inv, rule->each != NULL, index, detail);
}

/* A number at *s (optional '-', digits, optional fraction after '.', or ',' as well when
 * `comma` is set); advances *s. */
static bool scan_number(const char **s, bool comma, fixed *out)
{
	const char *p = *s;
	char buf[64];
	size_t n = 0;
	if (*p == '-')
		buf[n++] = *p++;
	if (!isdigit((unsigned char)*p))
		return false;
	bool point = false;
	while (n + 1 < sizeof buf) {
		bool mark = !point && (*p == '.' || (comma && *p == ',')) &&
			    isdigit((unsigned char)p[1]);
		if (!isdigit((unsigned char)*p) && !mark)
			break;
		point |= mark;
		buf[n++] = mark ? '.' : *p;
		p++;
	}
	buf[n] = '\0';
	*s = p;
	return fixed_parse(buf, out);
}

static const char *skip_prefix(const char *s, const char *const *words)
{
	for (; *words; words++)
		if (strncmp(s, *words, strlen(*words)) == 0)
			return s + strlen(*words);
	return NULL;
}

/* A reference range as printed on lab reports: "3.5-5.5", "3.5 ~ 5.5", "<5", "≥ 10" ("3,5-5,1"
 * in the eu locale); text after the numbers (a unit) is ignored. Bounds are inclusive. */
static bool parse_range(const char *s, bool comma, fixed *lo, bool *has_lo, fixed *hi, bool *has_hi)
{
	static const char *const below[] = { "<=", "≤", "≦", "<", "＜", NULL };
	static const char *const above[] = { ">=", "≥", "≧", ">", "＞", NULL };
	static const char *const dashes[] = { "-", "~", "–", "—", "－", "～", "to", NULL };
	const char *p;
	*has_lo = *has_hi = false;
	while (*s == ' ')
		s++;
	if ((p = skip_prefix(s, below)) || (p = skip_prefix(s, above))) {
		bool is_hi = skip_prefix(s, below) != NULL;
		while (*p == ' ')
			p++;
		if (!scan_number(&p, comma, is_hi ? hi : lo))
			return false;
		*(is_hi ? has_hi : has_lo) = true;
	} else {
		p = s;
		if (!scan_number(&p, comma, lo))
			return false;
		while (*p == ' ')
			p++;
		if (!(p = skip_prefix(p, dashes)))
			return false;
		while (*p == ' ')
			p++;
		if (!scan_number(&p, comma, hi) || *hi < *lo)
			return false;
		*has_lo = *has_hi = true;
	}
	return *p == '\0' || *p == ' ' || !isdigit((unsigned char)*p);
}

static void check_range_flag(struct vctx *c, const struct ex_rule *rule, size_t index)
{
	struct involved inv = { .n = 0 };
	fixed value, lo = 0, hi = 0;
	bool has_lo = false, has_hi = false;
	if (!read_field(c, rule->value, index, &value, &inv))
		return; /* qualitative results ("negative") have no range to agree with */
	char *path;
	if (rule->range) {
		path = concrete(rule->range->path, index);
		struct ex_field_result *r = result_at(c, path);
		g_free(path);
		if (!r || !json_is_string(r->value) ||
		    !parse_range(json_string_value(r->value), c->schema->locale == EX_LOCALE_EU,
				 &lo, &has_lo, &hi, &has_hi))
			return;
		involve(&inv, r);
	} else {
		has_lo = rule->low && read_field(c, rule->low, index, &lo, &inv);
		has_hi = rule->high && read_field(c, rule->high, index, &hi, &inv);
	}
	if (!has_lo && !has_hi)
		return;
	path = concrete(rule->flag->path, index);
	struct ex_field_result *fr = result_at(c, path);
	g_free(path);
	if (!fr)
		return;
	involve(&inv, fr);
	const char *flag = json_is_string(fr->value) ? json_string_value(fr->value) : "";
	static const char *const high[] = { "H", "high", "↑" }, *const low[] = { "L", "low", "↓" },
				 *const normal[] = { "normal", "N", "" };
	int said = -1; /* 0 low, 1 normal, 2 high */
	for (int k = 0; k < 3; k++) {
		if (g_ascii_strcasecmp(flag, low[k]) == 0)
			said = 0;
		if (g_ascii_strcasecmp(flag, normal[k]) == 0)
			said = 1;
		if (g_ascii_strcasecmp(flag, high[k]) == 0)
			said = 2;
	}
	int is = has_hi && value > hi ? 2 : has_lo && value < lo ? 0 : 1;
	if (said == is)
		return;
	static const char *const names[] = { "L", "normal", "H" };
	static const char *const where[] = { "below", "inside", "above" };
	struct quote q;
	char vs[64], detail[200];
	fixed_format(value, vs, sizeof vs);
	if (said < 0)
		snprintf(detail, sizeof detail, "flag '%s' is not H, L or normal", quote(flag, &q));
	else
		snprintf(detail, sizeof detail,
			 "%s is %s the reference range, so the flag should be "
			 "%s, not %s",
			 vs, where[is], names[is], names[said]);
	rule_failed(c, rule, &inv, rule->each != NULL, index, detail);
}

static void check_rules(struct vctx *c)
{
	for (size_t k = 0; k < c->schema->n_rules && !c->oom; k++) {
		const struct ex_rule *rule = &c->schema->rules[k];
		size_t n = 1;
		if (rule->each) {
			char *p = g_strdup_printf("%s[]", rule->each->path);
			bool present = array_len(c, p, &n);
			g_free(p);
			if (!present)
				continue;
		}
		for (size_t i = 0; i < n; i++) {
			if (rule->kind == EX_RULE_ARITHMETIC)
				check_arithmetic(c, rule, i);
			else if (rule->kind == EX_RULE_CHECKSUM)
				check_checksum(c, rule, i);
			else
				check_range_flag(c, rule, i);
		}
	}
}

/* ---- Confidence, status ---------------------------------------------------------------------- */

static void score(struct vctx *c, const struct ex_field_evidence *ev, size_t n_ev)
{
	double threshold = c->schema->confidence_threshold;
	for (size_t k = 0; k < c->v->n_fields && !c->oom; k++) {
		struct ex_field_result *r = &c->v->fields[k];
		bool seen = false;
		for (size_t e = 0; e < n_ev; e++) {
			if (strcmp(ev[e].path, r->path) != 0)
				continue;
			double conf = ex_confidence(ev[e].logprobs, ev[e].n);
			r->confidence = seen && r->confidence < conf ? r->confidence : conf;
			if (!seen)
				r->page = ev[e].page;
			seen = true;
		}
		if (r->confidence < threshold) {
			char msg[120];
			snprintf(msg, sizeof msg, "confidence %.2f is below the threshold %.2f",
				 r->confidence, threshold);
			c->oom |= json_array_append_new(
					  c->v->review,
					  json_pack("{s:s, s:s, s:s}", "field", r->path, "reason",
						    "low_confidence", "message", msg)) < 0;
		}
	}
}

void ex_validation_free(struct ex_validation *v)
{
	if (!v)
		return;
	for (size_t k = 0; k < v->n_fields; k++) {
		free(v->fields[k].path);
		json_decref(v->fields[k].value);
		json_decref(v->fields[k].errors);
	}
	free(v->fields);
	free(v->error);
	json_decref(v->data);
	json_decref(v->review);
	free(v);
}

int ex_validation_failed(const char *error, struct ex_validation **out, vlm_err *err)
{
	struct ex_validation *v = calloc(1, sizeof *v);
	*out = NULL;
	if (!v || !(v->error = strdup(error)) || !(v->review = json_array())) {
		ex_validation_free(v);
		return vlm_err_set(err, -ENOMEM, "validate: out of memory");
	}
	v->status = EX_STATUS_FAILED;
	*out = v;
	return 0;
}

int ex_validate(const struct ex_schema *schema, const json_t *output,
		const struct ex_field_evidence *evidence, size_t n_evidence,
		struct ex_validation **out, vlm_err *err)
{
	*out = NULL;
	if (!json_is_object(output)) {
		char msg[160];
		snprintf(msg, sizeof msg,
			 "validate: schema '%s': the model's answer is %s, not an "
			 "object",
			 schema->name, output ? json_kind(output) : "missing");
		return ex_validation_failed(msg, out, err);
	}
	struct ex_validation *v = calloc(1, sizeof *v);
	struct vctx c = { .schema = schema, .v = v };
	if (!v || !(v->data = json_object()) || !(v->review = json_array())) {
		c.oom = true;
		goto done;
	}
	walk_object(&c, schema->fields, schema->n_fields, output, "", v->data, false);
	if (!c.oom)
		check_rules(&c);
	if (!c.oom)
		score(&c, evidence, n_evidence);
	v->status = json_array_size(v->review) ? EX_STATUS_NEEDS_REVIEW : EX_STATUS_OK;
done:
	for (size_t k = 0; k < c.n_arrays; k++)
		free(c.arrays[k].path);
	free(c.arrays);
	if (c.oom) {
		ex_validation_free(v);
		return vlm_err_set(err, -ENOMEM, "validate: schema '%s': out of memory",
				   schema->name);
	}
	*out = v;
	return 0;
}
