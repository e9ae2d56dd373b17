#include "simulated_vfs.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

typedef struct SimVfs {
    sqlite3_vfs base;
    sqlite3_vfs *real;
    agadir_sim_hooks hooks;
    char *name;
} SimVfs;

typedef struct SimFile {
    sqlite3_file base;
    SimVfs *vfs;
    char *path;           /* NULL for SQLite's temporary files: not tracked */
    int flags;
    sqlite3_file *real;   /* the default VFS's file, right after this struct */
} SimFile;

static sqlite3_file *real_of(sqlite3_file *f) { return ((SimFile *)f)->real; }

static int sim_close(sqlite3_file *f) {
    SimFile *p = (SimFile *)f;
    int rc = p->real->pMethods ? p->real->pMethods->xClose(p->real) : SQLITE_OK;
    free(p->path);
    p->path = NULL;
    return rc;
}

static int sim_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off) {
    return real_of(f)->pMethods->xRead(real_of(f), buf, n, off);
}

static int sim_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off) {
    SimFile *p = (SimFile *)f;
    if (p->path && p->vfs->hooks.write) {
        int rc = p->vfs->hooks.write(p->vfs->hooks.context, p->path, buf, n, off);
        if (rc != SQLITE_OK) return rc;
    }
    return p->real->pMethods->xWrite(p->real, buf, n, off);
}

static int sim_truncate(sqlite3_file *f, sqlite3_int64 size) {
    SimFile *p = (SimFile *)f;
    if (p->path && p->vfs->hooks.truncate) {
        int rc = p->vfs->hooks.truncate(p->vfs->hooks.context, p->path, size);
        if (rc != SQLITE_OK) return rc;
    }
    return p->real->pMethods->xTruncate(p->real, size);
}

/* The simulated disk decides what a sync made durable; the real file need not be synced
   (a test's files are scratch), which keeps thousands of simulated power cuts quick. */
static int sim_sync(sqlite3_file *f, int flags) {
    SimFile *p = (SimFile *)f;
    if (p->path && p->vfs->hooks.sync) return p->vfs->hooks.sync(p->vfs->hooks.context, p->path, p->flags);
    return p->real->pMethods->xSync(p->real, flags);
}

static int sim_file_size(sqlite3_file *f, sqlite3_int64 *size) {
    return real_of(f)->pMethods->xFileSize(real_of(f), size);
}
static int sim_lock(sqlite3_file *f, int level) { return real_of(f)->pMethods->xLock(real_of(f), level); }
static int sim_unlock(sqlite3_file *f, int level) { return real_of(f)->pMethods->xUnlock(real_of(f), level); }
static int sim_check_reserved(sqlite3_file *f, int *out) {
    return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}
static int sim_file_control(sqlite3_file *f, int op, void *arg) {
    return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}
static int sim_sector_size(sqlite3_file *f) { return real_of(f)->pMethods->xSectorSize(real_of(f)); }
static int sim_device_characteristics(sqlite3_file *f) {
    return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
}
static int sim_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out) {
    return real_of(f)->pMethods->xShmMap(real_of(f), region, size, extend, out);
}
static int sim_shm_lock(sqlite3_file *f, int offset, int n, int flags) {
    return real_of(f)->pMethods->xShmLock(real_of(f), offset, n, flags);
}
static void sim_shm_barrier(sqlite3_file *f) { real_of(f)->pMethods->xShmBarrier(real_of(f)); }
static int sim_shm_unmap(sqlite3_file *f, int remove) {
    return real_of(f)->pMethods->xShmUnmap(real_of(f), remove);
}

/* Version 2: no xFetch, so SQLite never writes through a memory map the hooks cannot see. */
static const sqlite3_io_methods sim_methods = {
    2, sim_close, sim_read, sim_write, sim_truncate, sim_sync, sim_file_size, sim_lock, sim_unlock,
    sim_check_reserved, sim_file_control, sim_sector_size, sim_device_characteristics, sim_shm_map,
    sim_shm_lock, sim_shm_barrier, sim_shm_unmap, NULL, NULL,
};

static int sim_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out_flags) {
    SimVfs *s = (SimVfs *)v;
    SimFile *p = (SimFile *)f;
    memset(p, 0, sizeof(SimFile));
    p->vfs = s;
    p->flags = flags;
    p->real = (sqlite3_file *)&p[1];
    if (name) {
        if (s->hooks.open) {
            int rc = s->hooks.open(s->hooks.context, name, flags);
            if (rc != SQLITE_OK) return rc;
        }
        p->path = strdup(name);
        if (!p->path) return SQLITE_NOMEM;
    }
    int rc = s->real->xOpen(s->real, name, p->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (p->real->pMethods) p->real->pMethods->xClose(p->real);
        free(p->path);
        p->path = NULL;
        p->base.pMethods = NULL;
        return rc;
    }
    p->base.pMethods = &sim_methods;
    return SQLITE_OK;
}

static int sim_delete(sqlite3_vfs *v, const char *name, int dir_sync) {
    SimVfs *s = (SimVfs *)v;
    if (s->hooks.remove) {
        int rc = s->hooks.remove(s->hooks.context, name);
        if (rc != SQLITE_OK) return rc;
    }
    return s->real->xDelete(s->real, name, dir_sync);
}

static sqlite3_vfs *real_vfs(sqlite3_vfs *v) { return ((SimVfs *)v)->real; }
static int sim_access(sqlite3_vfs *v, const char *name, int flags, int *out) {
    return real_vfs(v)->xAccess(real_vfs(v), name, flags, out);
}
static int sim_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out) {
    return real_vfs(v)->xFullPathname(real_vfs(v), name, n, out);
}
static void *sim_dl_open(sqlite3_vfs *v, const char *name) { return real_vfs(v)->xDlOpen(real_vfs(v), name); }
static void sim_dl_error(sqlite3_vfs *v, int n, char *out) { real_vfs(v)->xDlError(real_vfs(v), n, out); }
static void (*sim_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void) {
    return real_vfs(v)->xDlSym(real_vfs(v), h, sym);
}
static void sim_dl_close(sqlite3_vfs *v, void *h) { real_vfs(v)->xDlClose(real_vfs(v), h); }
static int sim_randomness(sqlite3_vfs *v, int n, char *out) {
    return real_vfs(v)->xRandomness(real_vfs(v), n, out);
}
static int sim_sleep(sqlite3_vfs *v, int micros) { return real_vfs(v)->xSleep(real_vfs(v), micros); }
static int sim_current_time(sqlite3_vfs *v, double *out) { return real_vfs(v)->xCurrentTime(real_vfs(v), out); }
static int sim_get_last_error(sqlite3_vfs *v, int n, char *out) {
    return real_vfs(v)->xGetLastError(real_vfs(v), n, out);
}
static int sim_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *out) {
    return real_vfs(v)->xCurrentTimeInt64(real_vfs(v), out);
}

int agadir_sim_vfs_register(const char *name, agadir_sim_hooks hooks) {
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real || real->iVersion < 2) return SQLITE_ERROR;
    SimVfs *s = calloc(1, sizeof(SimVfs));
    if (!s) return SQLITE_NOMEM;
    s->name = strdup(name);
    if (!s->name) {
        free(s);
        return SQLITE_NOMEM;
    }
    s->real = real;
    s->hooks = hooks;
    s->base.iVersion = 2;
    s->base.szOsFile = (int)sizeof(SimFile) + real->szOsFile;
    s->base.mxPathname = real->mxPathname;
    s->base.zName = s->name;
    s->base.xOpen = sim_open;
    s->base.xDelete = sim_delete;
    s->base.xAccess = sim_access;
    s->base.xFullPathname = sim_full_pathname;
    s->base.xDlOpen = sim_dl_open;
    s->base.xDlError = sim_dl_error;
    s->base.xDlSym = sim_dl_sym;
    s->base.xDlClose = sim_dl_close;
    s->base.xRandomness = sim_randomness;
    s->base.xSleep = sim_sleep;
    s->base.xCurrentTime = sim_current_time;
    s->base.xGetLastError = sim_get_last_error;
    s->base.xCurrentTimeInt64 = sim_current_time_int64;
    int rc = sqlite3_vfs_register(&s->base, 0);
    if (rc != SQLITE_OK) {
        free(s->name);
        free(s);
    }
    return rc;
}

void agadir_sim_vfs_unregister(const char *name) {
    sqlite3_vfs *v = sqlite3_vfs_find(name);
    if (!v || v->xOpen != sim_open) return;
    sqlite3_vfs_unregister(v);
    SimVfs *s = (SimVfs *)v;
    free(s->name);
    free(s);
}

int agadir_sim_ioerr_write(void) { return SQLITE_IOERR_WRITE; }
int agadir_sim_ioerr_fsync(void) { return SQLITE_IOERR_FSYNC; }
int agadir_sim_ioerr_truncate(void) { return SQLITE_IOERR_TRUNCATE; }
int agadir_sim_ioerr_delete(void) { return SQLITE_IOERR_DELETE; }
int agadir_sim_full(void) { return SQLITE_FULL; }
int agadir_sim_open_wal(void) { return SQLITE_OPEN_WAL; }
int agadir_sim_open_main_journal(void) { return SQLITE_OPEN_MAIN_JOURNAL; }
