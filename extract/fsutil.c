/* Atomic file replacement for everything libextract writes (page PNGs, result JSON): temporary
 * file in the same directory, fsync, rename, fsync of the directory. A reader of `path` (a
 * person, the daemon's outbox scanner) never sees a partial file. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

/* Makes the rename itself durable: the directory entry is data of the directory. */
static int sync_dir_of(const char *path, vlm_err *err)
{
	char *copy = strdup(path);
	if (!copy)
		return vlm_err_set(err, -ENOMEM, "write: '%s': out of memory", path);
	const char *dir = dirname(copy);
	int rc = 0;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		rc = vlm_err_set(err, -errno, "write: '%s': cannot sync directory '%s': %s", path,
				 dir, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

int ex_write_atomic(const char *path, ex_fill_fn *fill, void *user, vlm_err *err)
{
	static const char suffix[] = ".XXXXXX.tmp";
	size_t n = strlen(path) + sizeof suffix;
	char *tmp = malloc(n);
	if (!tmp)
		return vlm_err_set(err, -ENOMEM, "write: '%s': out of memory", path);
	snprintf(tmp, n, "%s%s", path, suffix);

	int rc = 0;
	int fd = mkostemps(tmp, 4, O_CLOEXEC);
	if (fd < 0) {
		rc = vlm_err_set(err, -errno, "write: '%s': cannot create a temporary file: %s",
				 path, strerror(errno));
		free(tmp);
		return rc;
	}
	FILE *fp = fchmod(fd, 0644) == 0 ? fdopen(fd, "wb") : NULL;
	if (!fp) {
		rc = vlm_err_set(err, -errno, "write: '%s': %s", tmp, strerror(errno));
		close(fd);
		goto out;
	}
	rc = fill(fp, user, err);
	if (rc == 0 && (fflush(fp) != 0 || fsync(fileno(fp)) != 0))
		rc = vlm_err_set(err, -errno, "write: '%s': cannot write: %s", tmp,
				 strerror(errno));
	if (fclose(fp) != 0 && rc == 0)
		rc = vlm_err_set(err, -errno, "write: '%s': cannot close: %s", tmp,
				 strerror(errno));
	if (rc == 0 && rename(tmp, path) != 0)
		rc = vlm_err_set(err, -errno, "write: '%s': cannot rename '%s' over it: %s", path,
				 tmp, strerror(errno));
	if (rc == 0) {
		free(tmp);
		return sync_dir_of(path, err);
	}
out:
	unlink(tmp);
	free(tmp);
	return rc;
}
