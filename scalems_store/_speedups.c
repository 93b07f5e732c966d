/* scalems_store._speedups: the per-file system calls of tree archives, in C.
 *
 * Optional: scalems_store.archive falls back to the same loops in Python when
 * this module was not built (no compiler at install time). Nothing here parses,
 * validates or formats an archive:
 *
 * - write_files() creates the files of an archive that Python has already
 *   checked (every member's name, type and bounds);
 * - read_files() reads the small files of a directory being archived, and
 *   returns None for any file it cannot read plainly, which Python then reads
 *   (and reports an error for) itself.
 *
 * Both run their system calls without the GIL, so other threads (a second
 * writer, the hashing thread) run meanwhile; the Python loops cannot do that,
 * their ~4 us of bytecode per file between system calls keeps the GIL busy.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
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
    int fd = open(PyBytes_AS_STRING(r->path), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
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
    close(fd);
    r->ok = r->data != NULL && got == r->size;
}

PyDoc_STRVAR(read_files_doc,
             "read_files(paths, limit, /)\n--\n\n"
             "Read each path (str) that is a regular file of at most *limit* bytes,\n"
             "without following a final symlink. Returns a list with, for each path,\n"
             "(data, mode) where mode is 0o755 if the owner may execute it, else\n"
             "0o644; or None where the file could not be read that way (an error,\n"
             "another type, a larger file, a file that shrank).");

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

static PyMethodDef speedups_methods[] = {
    {"write_files", write_files, METH_VARARGS, write_files_doc},
    {"read_files", read_files, METH_VARARGS, read_files_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "scalems_store._speedups",
    "The per-file system calls of tree archives, without the GIL (optional).",
    0,
    speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
