/* Format-independent ingest behaviour: what is refused before any decoder runs (by file type,
 * size and magic bytes), the error lines, and the shared pixel helpers decoders rely on. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ex.h"
#include "ingest.h"

static char dir[] = "/tmp/test_ingest.XXXXXX";

static const char *path_of(const char *name)
{
	static char buf[256];
	snprintf(buf, sizeof buf, "%s/%s", dir, name);
	return buf;
}

static void write_bytes(const char *name, const void *data, size_t n)
{
	FILE *f = fopen(path_of(name), "wb");
	CHECK(f != NULL);
	if (f) {
		CHECK(fwrite(data, 1, n, f) == n);
		fclose(f);
	}
}

/* Loads `name` expecting failure with `reason`; the message must name the file. */
static void expect_refused(const char *name, const struct ex_limits *lim,
			   enum ex_ingest_reason reason, int code, const char *fragment)
{
	vlm_err err = { 0 };
	struct ex_doc *doc = (struct ex_doc *)1;
	int rc = ex_doc_load(path_of(name), lim, &doc, &err);
	CHECK_INT(rc, code);
	CHECK_INT(err.code, code);
	CHECK_INT(err.reason, reason);
	CHECK(doc == NULL);
	CHECK_CONTAINS(err.msg, path_of(name));
	CHECK_CONTAINS(err.msg, fragment);
	CHECK(strchr(err.msg, '\n') == NULL);
}

static void test_not_documents(void)
{
	write_bytes("empty.pdf", "", 0);
	expect_refused("empty.pdf", NULL, EX_REASON_EMPTY, -EBADMSG, "empty file");

	CHECK(mkdir(path_of("adir.pdf"), 0700) == 0);
	expect_refused("adir.pdf", NULL, EX_REASON_NOT_REGULAR, -EINVAL, "directory");

	/* A FIFO with no writer would block a plain open() forever. */
	CHECK(mkfifo(path_of("fifo.png"), 0600) == 0);
	expect_refused("fifo.png", NULL, EX_REASON_NOT_REGULAR, -EINVAL, "FIFO");

	static const char svg[] = "<?xml version=\"1.0\"?><!DOCTYPE svg [<!ENTITY x SYSTEM "
				  "\"file:///etc/passwd\">]><svg>&x;</svg>";
	write_bytes("real.svg", svg, sizeof svg - 1);
	write_bytes("link.pdf", "%PDF-1.4\n", 9);
	char target[256];
	snprintf(target, sizeof target, "%s", path_of("real.svg"));
	CHECK(symlink(target, path_of("symlink.pdf")) == 0);
	expect_refused("symlink.pdf", NULL, EX_REASON_NOT_REGULAR, -EINVAL, "symbolic link");

	vlm_err err = { 0 };
	struct ex_doc *doc = NULL;
	CHECK_INT(ex_doc_load(path_of("missing.pdf"), NULL, &doc, &err), -ENOENT);
	CHECK_INT(err.reason, EX_REASON_IO);
	CHECK_CONTAINS(err.msg, "missing.pdf");
}

static void test_magic_bytes(void)
{
	/* The extension never matters: each of these is named like an allowed format. */
	expect_refused("real.svg", NULL, EX_REASON_UNSUPPORTED, -ENOTSUP, "XML or SVG");
	static const char html[] = "<!DOCTYPE html><html><body>invoice</body></html>";
	write_bytes("page.pdf", html, sizeof html - 1);
	expect_refused("page.pdf", NULL, EX_REASON_UNSUPPORTED, -ENOTSUP, "HTML");
	static const char zip[] = "PK\3\4\24\0\0\0\10\0%PDF-1.4";
	write_bytes("archive.tiff", zip, sizeof zip - 1);
	expect_refused("archive.tiff", NULL, EX_REASON_UNSUPPORTED, -ENOTSUP, "ZIP");
	static const char gif[] = "GIF89a\1\0\1\0\0\0\0;";
	write_bytes("anim.png", gif, sizeof gif - 1);
	expect_refused("anim.png", NULL, EX_REASON_UNSUPPORTED, -ENOTSUP, "GIF");
	/* Three bytes of a PNG signature are not a PNG. */
	write_bytes("short.png", "\x89PN", 3);
	expect_refused("short.png", NULL, EX_REASON_UNSUPPORTED, -ENOTSUP, "not PDF");
}

static void test_file_size_limit(void)
{
	struct ex_limits lim;
	ex_limits_default(&lim);
	CHECK_INT(lim.max_pages, 500);
	CHECK_INT(lim.max_page_pixels, 60000000);
	lim.max_file_bytes = 8;
	write_bytes("big.pdf", "%PDF-1.4 and more bytes", 23);
	expect_refused("big.pdf", &lim, EX_REASON_FILE_TOO_LARGE, -E2BIG, "23 bytes");
}

/* A 3x2 image with pixels a..f, and the expected result of every TIFF/EXIF orientation,
 * written out by hand from the TIFF 6.0 definitions. */
static void test_orientation(void)
{
	static const char *const want[9] = {
		NULL,     "abcdef", "cbafed", "fedcba", "defabc",
		"adbecf", "daebfc", "fcebda", "cfbead",
	};
	static const int want_w[9] = { 0, 3, 3, 3, 3, 2, 2, 2, 2 };
	for (int o = 1; o <= 8; o++) {
		uint8_t rgb[18];
		for (int i = 0; i < 6; i++)
			rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = (uint8_t)('a' + i);
		struct ex_page page = { .number = 1,
					.width = 3,
					.height = 2,
					.dpi_x = 100,
					.dpi_y = 200,
					.rgb = malloc(sizeof rgb) };
		memcpy(page.rgb, rgb, sizeof rgb);
		CHECK_INT(ex_page_orient(&page, o, NULL), 0);
		CHECK_INT(page.width, want_w[o]);
		CHECK_INT(page.height, 6 / want_w[o]);
		CHECK_NEAR(page.dpi_x, o >= 5 ? 200 : 100, 0);
		char got[7] = { 0 };
		for (int i = 0; i < 6; i++)
			got[i] = (char)page.rgb[3 * i];
		CHECK_STR(got, want[o]);
		free(page.rgb);
	}
}

static void test_pixel_helpers(void)
{
	/* Alpha over white: (v*a + 255*(255-a)) / 255, rounded. */
	uint8_t rgba[8] = { 0, 100, 255, 0, 0, 100, 200, 128 };
	uint8_t rgb[6];
	ex_rgb_from_rgba(rgb, rgba, 2);
	CHECK_INT(rgb[0], 255);
	CHECK_INT(rgb[1], 255);
	CHECK_INT(rgb[2], 255);
	CHECK_INT(rgb[3], 127); /* (0*128 + 255*127)/255 = 127 */
	CHECK_INT(rgb[4], 177); /* (100*128 + 32385)/255 = 177.2 */
	CHECK_INT(rgb[5], 227); /* (200*128 + 32385)/255 = 227.4 */

	/* CMYK: pure cyan ink gives (0,255,255); Adobe-inverted storage flips every channel. */
	uint8_t cmyk[8] = { 255, 0, 0, 0, 0, 255, 255, 255 };
	ex_rgb_from_cmyk(rgb, cmyk, 2, false);
	CHECK(rgb[0] == 0 && rgb[1] == 255 && rgb[2] == 255);
	CHECK(rgb[3] == 0 && rgb[4] == 0 && rgb[5] == 0);
	ex_rgb_from_cmyk(rgb, cmyk, 2, true);
	CHECK(rgb[0] == 0 && rgb[1] == 0 && rgb[2] == 0);
	CHECK(rgb[3] == 0 && rgb[4] == 255 && rgb[5] == 255);

	uint8_t buf[6] = { 7, 9 };
	ex_rgb_from_gray(buf, buf, 2); /* in place */
	CHECK(buf[0] == 7 && buf[1] == 7 && buf[2] == 7 && buf[3] == 9 && buf[5] == 9);
}

int main(void)
{
	CHECK(mkdtemp(dir) != NULL);
	test_not_documents();
	test_magic_bytes();
	test_file_size_limit();
	test_orientation();
	test_pixel_helpers();
	const char *names[] = { "empty.pdf", "fifo.png",     "real.svg", "link.pdf",  "symlink.pdf",
				"page.pdf",  "archive.tiff", "anim.png", "short.png", "big.pdf" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		unlink(path_of(names[i]));
	rmdir(path_of("adir.pdf"));
	rmdir(dir);
	return CHECK_DONE();
}
