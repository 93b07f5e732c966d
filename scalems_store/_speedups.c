/* scalems_store._speedups: the per-file system calls of tree archives, in C.
 *
 * Optional: scalems_store.archive falls back to the same loops in Python when
 * this module was not built (no compiler at install time). Nothing here parses,
 * validates or formats an archive:
 *
 * - write_files() creates the files of an archive that Python has already
 *   checked (every member's name, type and bounds);
 * - read_files() reads the small files of a directory being archived (or of a
 *   list being added), and returns None for any file it cannot read plainly,
 *   which Python then reads (and reports an error for) itself;
 * - scan_objects() lists objects/ with each object's size and mtime (gc,
 *   verify and reindex start from it), following no symlink;
 * - syncfs() flushes a filesystem at once (the group commit of a batch).
 *
 * They run their system calls without the GIL, so other threads (a second
 * writer, the hashing thread) run meanwhile; the Python loops cannot do that,
 * their ~4 us of bytecode per file between system calls keeps the GIL busy.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CREATE_FLAGS (O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC)
#define MAX_WRITE ((Py_ssize_t)1 << 30)

typedef struct {
    const char *path;   /* UTF-8, borrowed from the item's str (kept alive by our tuple) */
    Py_ssize_t parent_len; /* bytes of path before the last '/'; -1 for a file in root */
    const char *name;   /* path after the last '/' */
    Py_ssize_t offset;
    Py_ssize_t size;
    int mode;
} item_t;

/* Unpack the items (GIL held): each is a tuple that starts (path, type, mode,
 * size, offset), as scalems_store.archive.Entry does. Returns 0, or -1 with an
 * exception set. */
static int
unpack_items(PyObject *items, Py_ssize_t count, Py_ssize_t length, item_t *out)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(items, i);
        item_t *it = &out[i];
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 5) {
            PyErr_Format(PyExc_TypeError, "not an archive entry: %R", item);
            return -1;
        }
        Py_ssize_t path_len;
        it->path = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(item, 0), &path_len);
        if (it->path == NULL) {
            return -1;
        }
        long mode = PyLong_AsLong(PyTuple_GET_ITEM(item, 2));
        it->size = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 3));
        it->offset = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 4));
        if (PyErr_Occurred()) {
            return -1;
        }
        const char *slash = strrchr(it->path, '/');
        it->name = slash ? slash + 1 : it->path;
        it->parent_len = slash ? slash - it->path : -1;
        if ((Py_ssize_t)strlen(it->path) != path_len || it->name[0] == '\0' ||
            it->parent_len == 0 || it->parent_len >= PATH_MAX) {
            PyErr_Format(PyExc_ValueError, "bad archive path %R", PyTuple_GET_ITEM(item, 0));
            return -1;
        }
        if (it->offset < 0 || it->size < 0 || it->offset > length - it->size) {
            PyErr_Format(PyExc_ValueError, "entry %R lies outside the archive", item);
            return -1;
        }
        it->mode = (int)(mode & 0777);
    }
    return 0;
}

/* Open the parent directory of *it* under rootfd. Returns an fd, or -1 with errno set. */
static int
open_parent(int rootfd, const item_t *it)
{
    char parent[PATH_MAX];
    if (it->parent_len < 0) {
        strcpy(parent, ".");
    }
    else {
        memcpy(parent, it->path, (size_t)it->parent_len);
        parent[it->parent_len] = '\0';
    }
    return openat(rootfd, parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static int
same_parent(const item_t *a, const item_t *b)
{
    return a->parent_len == b->parent_len &&
           (a->parent_len < 0 || memcmp(a->path, b->path, (size_t)a->parent_len) == 0);
}

/* Create and fill one file in dirfd. Returns 0, or -1 with errno set. */
static int
write_one(int dirfd, const item_t *it, const char *base)
{
    int fd = openat(dirfd, it->name, CREATE_FLAGS, it->mode);
    if (fd < 0) {
        return -1;
    }
    const char *p = base + it->offset;
    Py_ssize_t left = it->size;
    while (left > 0) {
        ssize_t done = write(fd, p, left < MAX_WRITE ? (size_t)left : (size_t)MAX_WRITE);
        if (done < 0) {
            if (errno == EINTR) {
                continue; /* the signal is handled when Python runs again */
            }
            goto failed;
        }
        if (done == 0) {
            errno = EIO;
            goto failed;
        }
        p += done;
        left -= done;
    }
    if (close(fd) != 0 && errno != EINTR) {
        return -1; /* a delayed write error (NFS, a full disk) */
    }
    return 0;
failed : {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}
}

PyDoc_STRVAR(write_files_doc,
             "write_files(root, data, entries, /)\n--\n\n"
             "Create each file of *entries* under the directory *root* (bytes) and\n"
             "write its bytes from the buffer *data*. An entry is a tuple that starts\n"
             "(path, type, mode, size, offset), as archive.Entry does; path is relative\n"
             "to root, its parent directory exists. Files are created with O_EXCL and\n"
             "O_NOFOLLOW. Raises OSError naming the file that could not be written.");

static PyObject *
write_files(PyObject *module, PyObject *args)
{
    const char *root;
    Py_buffer data;
    PyObject *sequence;
    if (!PyArg_ParseTuple(args, "yy*O:write_files", &root, &data, &sequence)) {
        return NULL;
    }
    PyObject *items = NULL;
    item_t *unpacked = NULL;
    PyObject *result = NULL;

    /* a tuple of our own: the items (and the strings we borrow from them) stay
       alive and unchanged while the GIL is released */
    items = PySequence_Tuple(sequence);
    if (items == NULL) {
        goto done;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    unpacked = PyMem_New(item_t, count ? count : 1);
    if (unpacked == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (unpack_items(items, count, data.len, unpacked) < 0) {
        goto done;
    }

    int error = 0;
    Py_ssize_t failed = -1;
    Py_BEGIN_ALLOW_THREADS
    int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int dirfd = -1;
    const item_t *opened = NULL;
    if (rootfd < 0) {
        error = errno;
    }
    for (Py_ssize_t i = 0; i < count && !error; i++) {
        const item_t *it = &unpacked[i];
        if (opened == NULL || !same_parent(opened, it)) {
            /* files come sorted by path: one directory open at a time */
            if (dirfd >= 0) {
                close(dirfd);
            }
            dirfd = open_parent(rootfd, it);
            opened = it;
            if (dirfd < 0) {
                error = errno;
                failed = i;
                break;
            }
        }
        if (write_one(dirfd, it, (const char *)data.buf) < 0) {
            error = errno;
            failed = i;
        }
    }
    if (dirfd >= 0) {
        close(dirfd);
    }
    if (rootfd >= 0) {
        close(rootfd);
    }
    Py_END_ALLOW_THREADS

    if (error) {
        errno = error;
        if (failed < 0) {
            PyErr_SetFromErrnoWithFilename(PyExc_OSError, root);
        }
        else {
            PyObject *path = PyTuple_GET_ITEM(PyTuple_GET_ITEM(items, failed), 0);
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        }
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(unpacked);
    Py_XDECREF(items);
    PyBuffer_Release(&data);
    return result;
}

typedef struct {
    PyObject *path; /* bytes, owned */
    char *data;     /* PyMem_RawMalloc'd, or NULL */
    Py_ssize_t size;
    int mode;
    int ok;
} read_t;

/* Read one regular file of at most limit bytes (no GIL). Sets r->ok on success. */
static void
read_one(read_t *r, Py_ssize_t limit)
{
    /* O_NONBLOCK: a FIFO must not wait for a writer (it is not read: not a regular file) */
    int fd = open(PyBytes_AS_STRING(r->path), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    struct stat info;
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode) || info.st_size > limit) {
        close(fd);
        return;
    }
    r->size = (Py_ssize_t)info.st_size;
    r->mode = (info.st_mode & S_IXUSR) ? 0755 : 0644;
    r->data = PyMem_RawMalloc(r->size ? (size_t)r->size : 1);
    Py_ssize_t got = 0;
    while (r->data != NULL && got < r->size) {
        ssize_t done = read(fd, r->data + got, (size_t)(r->size - got));
        if (done < 0 && errno == EINTR) {
            continue;
        }
        if (done <= 0) {
            break; /* an error, or the file shrank: Python reads it again */
        }
        got += done;
    }
    /* written meanwhile (its size or mtime moved): Python reads it again, and an add
     * then reports the change */
    struct stat after;
    int same = fstat(fd, &after) == 0 && after.st_size == info.st_size &&
               after.st_mtim.tv_sec == info.st_mtim.tv_sec &&
               after.st_mtim.tv_nsec == info.st_mtim.tv_nsec;
    close(fd);
    r->ok = r->data != NULL && got == r->size && same;
}

PyDoc_STRVAR(read_files_doc,
             "read_files(paths, limit, /)\n--\n\n"
             "Read each path (str) that is a regular file of at most *limit* bytes,\n"
             "without following a final symlink. Returns a list with, for each path,\n"
             "(data, mode) where mode is 0o755 if the owner may execute it, else\n"
             "0o644; or None where the file could not be read that way (an error,\n"
             "another type, a larger file, a file that changed while being read).");

static PyObject *
read_files(PyObject *module, PyObject *args)
{
    PyObject *sequence;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "On:read_files", &sequence, &limit)) {
        return NULL;
    }
    PyObject *paths = PySequence_Tuple(sequence);
    if (paths == NULL) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(paths);
    PyObject *result = NULL;
    read_t *reads = PyMem_Calloc(count ? (size_t)count : 1, sizeof(read_t));
    if (reads == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *path = PyTuple_GET_ITEM(paths, i);
        if (!PyUnicode_Check(path)) {
            PyErr_Format(PyExc_TypeError, "read_files paths are str, not %R", path);
            goto done;
        }
        reads[i].path = PyUnicode_EncodeFSDefault(path);
        if (reads[i].path == NULL) {
            goto done;
        }
        if ((Py_ssize_t)strlen(PyBytes_AS_STRING(reads[i].path)) !=
            PyBytes_GET_SIZE(reads[i].path)) {
            PyErr_Format(PyExc_ValueError, "embedded null byte in path %R", path);
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        read_one(&reads[i], limit);
    }
    Py_END_ALLOW_THREADS

    result = PyList_New(count);
    for (Py_ssize_t i = 0; result != NULL && i < count; i++) {
        PyObject *item = Py_None;
        if (reads[i].ok) {
            item = Py_BuildValue("(y#i)", reads[i].data, reads[i].size, reads[i].mode);
            if (item == NULL) {
                Py_CLEAR(result);
                break;
            }
        }
        else {
            Py_INCREF(item);
        }
        PyList_SET_ITEM(result, i, item);
    }
done:
    if (reads != NULL) {
        for (Py_ssize_t i = 0; i < count; i++) {
            Py_XDECREF(reads[i].path);
            PyMem_RawFree(reads[i].data);
        }
        PyMem_Free(reads);
    }
    Py_DECREF(paths);
    return result;
}


/* ------------------------------------------------------------------------
 * scan_objects(): the listing of objects/ that gc, verify and reindex start
 * from, one fstatat per object, without the GIL.
 */

typedef struct {
    char name[65];       /* the fingerprint, 64 hex digits */
    long long size;
    double mtime;
} listed_t;

typedef struct {
    char *path;          /* malloc'd */
    int what;            /* 0 stray, 1 symlink, 2 symlinked directory */
} odd_t;

typedef struct {
    listed_t *items;
    Py_ssize_t count, capacity;
    odd_t *odds;
    Py_ssize_t odd_count, odd_capacity;
    int failed;          /* out of memory */
    int sizes;           /* stat each object for its size and mtime (else -1 and 0) */
} scan_t;

static int
is_hex(const char *text, size_t length)
{
    if (strlen(text) != length) {
        return 0;
    }
    for (size_t i = 0; i < length; i++) {
        char c = text[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static void
add_odd(scan_t *scan, const char *top, const char *fanout, const char *name, int what)
{
    if (scan->odd_count == scan->odd_capacity) {
        Py_ssize_t more = scan->odd_capacity ? 2 * scan->odd_capacity : 16;
        odd_t *grown = realloc(scan->odds, (size_t)more * sizeof(odd_t));
        if (grown == NULL) {
            scan->failed = 1;
            return;
        }
        scan->odds = grown;
        scan->odd_capacity = more;
    }
    size_t length = strlen(top) + strlen(fanout) + strlen(name) + 3;
    char *path = malloc(length);
    if (path == NULL) {
        scan->failed = 1;
        return;
    }
    if (*fanout) {
        snprintf(path, length, "%s/%s/%s", top, fanout, name);
    }
    else {
        snprintf(path, length, "%s/%s", top, name);
    }
    scan->odds[scan->odd_count].path = path;
    scan->odds[scan->odd_count].what = what;
    scan->odd_count++;
}

static void
add_item(scan_t *scan, const char *fanout, const char *name, const struct stat *info)
{
    if (scan->count == scan->capacity) {
        Py_ssize_t more = scan->capacity ? 2 * scan->capacity : 4096;
        listed_t *grown = realloc(scan->items, (size_t)more * sizeof(listed_t));
        if (grown == NULL) {
            scan->failed = 1;
            return;
        }
        scan->items = grown;
        scan->capacity = more;
    }
    listed_t *item = &scan->items[scan->count++];
    memcpy(item->name, fanout, 2);
    memcpy(item->name + 2, name, 62);
    item->name[64] = '\0';
    item->size = (long long)info->st_size;
    item->mtime = (double)info->st_mtim.tv_sec + (double)info->st_mtim.tv_nsec * 1e-9;
}

static void
scan_fanout(scan_t *scan, int top_fd, const char *top, const char *fanout)
{
    int fd = openat(top_fd, fanout, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int error = errno;
        struct stat info;
        int symlink = fstatat(top_fd, fanout, &info, AT_SYMLINK_NOFOLLOW) == 0 &&
                      S_ISLNK(info.st_mode);
        if (error != ENOENT) {
            add_odd(scan, top, "", fanout, symlink ? 1 : 0);
        }
        return;
    }
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        close(fd);
        return;
    }
    struct dirent *entry;
    while (!scan->failed && (entry = readdir(dir)) != NULL) {
        const char *name = entry->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) {
            continue;
        }
        struct stat info;
        if (!is_hex(name, 62)) {
            add_odd(scan, top, fanout, name, 0);
            continue;
        }
        if (!scan->sizes && entry->d_type == DT_REG) {
            info.st_size = -1; /* the directory says what it is: no stat needed */
            info.st_mtim.tv_sec = 0;
            info.st_mtim.tv_nsec = 0;
            add_item(scan, fanout, name, &info);
            continue;
        }
        if (fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) != 0) {
            continue; /* removed meanwhile */
        }
        if (S_ISREG(info.st_mode)) {
            add_item(scan, fanout, name, &info);
        }
        else {
            add_odd(scan, top, fanout, name, S_ISLNK(info.st_mode) ? 1 : 0);
        }
    }
    closedir(dir);
}

/* Fan-out directories are scanned by a few threads at once: on tmpfs or a warm page
 * cache, fstatat is CPU work in the kernel, and a store has 256 of them to share. */
#define SCAN_THREADS_MAX 8

typedef struct {
    scan_t scan;
    int top_fd;
    const char *top;
    char (*names)[3];
    Py_ssize_t count;
    Py_ssize_t *next;   /* shared: the next fan-out to take */
    pthread_mutex_t *lock;
} scan_worker_t;

static void *
scan_worker(void *arg)
{
    scan_worker_t *worker = arg;
    for (;;) {
        pthread_mutex_lock(worker->lock);
        Py_ssize_t i = (*worker->next)++;
        pthread_mutex_unlock(worker->lock);
        if (i >= worker->count || worker->scan.failed) {
            return NULL;
        }
        scan_fanout(&worker->scan, worker->top_fd, worker->top, worker->names[i]);
    }
}

static void
merge_scan(scan_t *into, scan_t *from)
{
    if (from->failed) {
        into->failed = 1;
    }
    if (!into->failed && from->count) {
        listed_t *grown = realloc(into->items,
                                  (size_t)(into->count + from->count) * sizeof(listed_t));
        if (grown == NULL) {
            into->failed = 1;
        }
        else {
            memcpy(grown + into->count, from->items, (size_t)from->count * sizeof(listed_t));
            into->items = grown;
            into->count += from->count;
            into->capacity = into->count;
        }
    }
    for (Py_ssize_t i = 0; i < from->odd_count; i++) {
        if (!into->failed && into->odd_count == into->odd_capacity) {
            Py_ssize_t more = into->odd_capacity ? 2 * into->odd_capacity : 16;
            odd_t *grown = realloc(into->odds, (size_t)more * sizeof(odd_t));
            if (grown == NULL) {
                into->failed = 1;
            }
            else {
                into->odds = grown;
                into->odd_capacity = more;
            }
        }
        if (into->failed) {
            free(from->odds[i].path);
        }
        else {
            into->odds[into->odd_count++] = from->odds[i];
        }
    }
    free(from->items);
    free(from->odds);
}

static void
scan_top(scan_t *scan, const char *top)
{
    int fd = open(top, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP) {
            add_odd(scan, top, "", "", 2);
        }
        return;
    }
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        close(fd);
        return;
    }
    char (*names)[3] = malloc(256 * sizeof(*names));
    Py_ssize_t count = 0;
    struct dirent *entry;
    while (names != NULL && (entry = readdir(dir)) != NULL) {
        const char *name = entry->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) {
            continue;
        }
        if (is_hex(name, 2) && count < 256) {
            memcpy(names[count++], name, 3);
        }
        else {
            add_odd(scan, top, "", name, 0);
        }
    }
    if (names == NULL) {
        scan->failed = 1;
        closedir(dir);
        return;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    Py_ssize_t threads = cores < 1 ? 1 : (cores > SCAN_THREADS_MAX ? SCAN_THREADS_MAX : cores);
    if (threads > count) {
        threads = count ? count : 1;
    }
    scan_worker_t workers[SCAN_THREADS_MAX];
    pthread_t ids[SCAN_THREADS_MAX];
    int started[SCAN_THREADS_MAX] = {0};
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    Py_ssize_t next = 0;
    for (Py_ssize_t t = 0; t < threads; t++) {
        memset(&workers[t].scan, 0, sizeof(scan_t));
        workers[t].scan.sizes = scan->sizes;
        workers[t].top_fd = dirfd(dir);
        workers[t].top = top;
        workers[t].names = names;
        workers[t].count = count;
        workers[t].next = &next;
        workers[t].lock = &lock;
        /* the first share is this thread's own; the others get threads where they can */
        started[t] = t > 0 && pthread_create(&ids[t], NULL, scan_worker, &workers[t]) == 0;
    }
    scan_worker(&workers[0]);
    for (Py_ssize_t t = 0; t < threads; t++) {
        if (started[t]) {
            pthread_join(ids[t], NULL);
        }
        merge_scan(scan, &workers[t].scan);
    }
    free(names);
    closedir(dir);
}

PyDoc_STRVAR(scan_objects_doc,
             "scan_objects(top, sizes, /)\n--\n\n"
             "List the object files under the fan-out directory *top* (objects/),\n"
             "following no symlink. Returns (objects, odd): objects is a list of\n"
             "(fingerprint, size, mtime) of the regular files named by a fingerprint\n"
             "in a two-hex directory, unsorted (size -1 and mtime 0 unless *sizes*:\n"
             "then no object is stat'ed where the directory tells its type); odd is a\n"
             "list of (path, what) for everything else, what being 'stray', 'symlink'\n"
             "or 'symlinked'.");

static PyObject *
scan_objects(PyObject *module, PyObject *args)
{
    PyObject *top_bytes;
    int sizes;
    if (!PyArg_ParseTuple(args, "O&p:scan_objects", PyUnicode_FSConverter, &top_bytes, &sizes)) {
        return NULL;
    }
    scan_t scan = {0};
    scan.sizes = sizes;
    const char *top = PyBytes_AS_STRING(top_bytes);
    Py_BEGIN_ALLOW_THREADS
    scan_top(&scan, top);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL, *objects = NULL, *odds = NULL;
    if (scan.failed) {
        PyErr_NoMemory();
        goto done;
    }
    objects = PyList_New(scan.count);
    odds = PyList_New(scan.odd_count);
    if (objects == NULL || odds == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < scan.count; i++) {
        listed_t *item = &scan.items[i];
        PyObject *row = Py_BuildValue("(s#Ld)", item->name, (Py_ssize_t)64, item->size,
                                      item->mtime);
        if (row == NULL) {
            goto done;
        }
        PyList_SET_ITEM(objects, i, row);
    }
    static const char *whats[] = {"stray", "symlink", "symlinked"};
    for (Py_ssize_t i = 0; i < scan.odd_count; i++) {
        PyObject *path = PyUnicode_DecodeFSDefault(scan.odds[i].path);
        if (path == NULL) {
            goto done;
        }
        PyObject *row = Py_BuildValue("(Ns)", path, whats[scan.odds[i].what]);
        if (row == NULL) {
            goto done;
        }
        PyList_SET_ITEM(odds, i, row);
    }
    result = PyTuple_Pack(2, objects, odds);
done:
    Py_XDECREF(objects);
    Py_XDECREF(odds);
    free(scan.items);
    for (Py_ssize_t i = 0; i < scan.odd_count; i++) {
        free(scan.odds[i].path);
    }
    free(scan.odds);
    Py_DECREF(top_bytes);
    return result;
}

PyDoc_STRVAR(syncfs_doc,
"syncfs(fd, /)\n--\n\n"
"Flush every written byte and name of the filesystem holding open file *fd* to\n"
"disk (Linux syncfs(2)), without the GIL. OSError(ENOSYS) where there is none.");

static PyObject *
syncfs_(PyObject *module, PyObject *args)
{
    int fd, rc;
    if (!PyArg_ParseTuple(args, "i:syncfs", &fd))
        return NULL;
#ifdef __linux__
    Py_BEGIN_ALLOW_THREADS
    rc = syncfs(fd);
    Py_END_ALLOW_THREADS
#else
    rc = -1;
    errno = ENOSYS;
#endif
    if (rc != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(rename_noreplace_doc,
"rename_noreplace(src, dst, /)\n--\n\n"
"Rename *src* to *dst* unless *dst* exists (Linux renameat2(RENAME_NOREPLACE)):\n"
"what link(src, dst) and unlink(src) do, in one system call. FileExistsError if\n"
"*dst* exists; OSError(EINVAL or ENOSYS) where the system or filesystem has no such\n"
"rename.");

static PyObject *
rename_noreplace(PyObject *module, PyObject *args)
{
    PyObject *src_bytes, *dst_bytes;
    int rc;
    if (!PyArg_ParseTuple(args, "O&O&:rename_noreplace", PyUnicode_FSConverter, &src_bytes,
                          PyUnicode_FSConverter, &dst_bytes))
        return NULL;
#if defined(__linux__) && defined(SYS_renameat2)
    const char *src = PyBytes_AS_STRING(src_bytes), *dst = PyBytes_AS_STRING(dst_bytes);
    Py_BEGIN_ALLOW_THREADS
    rc = (int)syscall(SYS_renameat2, AT_FDCWD, src, AT_FDCWD, dst, 1 /* RENAME_NOREPLACE */);
    Py_END_ALLOW_THREADS
#else
    rc = -1;
    errno = ENOSYS;
#endif
    if (rc != 0) {
        PyErr_SetFromErrnoWithFilenameObjects(PyExc_OSError, src_bytes, dst_bytes);
        Py_DECREF(src_bytes);
        Py_DECREF(dst_bytes);
        return NULL;
    }
    Py_DECREF(src_bytes);
    Py_DECREF(dst_bytes);
    Py_RETURN_NONE;
}

static PyMethodDef speedups_methods[] = {
    {"rename_noreplace", rename_noreplace, METH_VARARGS, rename_noreplace_doc},
    {"syncfs", syncfs_, METH_VARARGS, syncfs_doc},
    {"write_files", write_files, METH_VARARGS, write_files_doc},
    {"read_files", read_files, METH_VARARGS, read_files_doc},
    {"scan_objects", scan_objects, METH_VARARGS, scan_objects_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "scalems_store._speedups",
    "The per-file system calls of tree archives and store listings, without the GIL (optional).",
    0,
    speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
