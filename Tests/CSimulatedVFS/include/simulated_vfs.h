// A SQLite VFS for tests that forwards to SQLite's default VFS and first tells the test's
// simulated disk about every file opened, written, truncated, synced and deleted, so the
// disk can keep what was written apart from what was synced and "lose power"
// (Tests/AgadirStoreTests/SimulatedDisk.swift). A hook returning non-zero fails the call
// with that SQLite result code and the call is not forwarded.
#ifndef AGADIR_SIMULATED_VFS_H
#define AGADIR_SIMULATED_VFS_H

typedef struct agadir_sim_hooks {
    void *context;
    /// Before a named file is opened; `flags` are SQLite's open flags.
    int (*open)(void *context, const char *path, int flags);
    int (*write)(void *context, const char *path, const void *bytes, int count, long long offset);
    int (*truncate)(void *context, const char *path, long long size);
    /// `flags` are SQLite's open flags of the file (a WAL or journal is also its directory entry's sync).
    int (*sync)(void *context, const char *path, int flags);
    int (*remove)(void *context, const char *path);
} agadir_sim_hooks;

/// Registers a VFS named `name` (copied) over the default one. 0 on success.
int agadir_sim_vfs_register(const char *name, agadir_sim_hooks hooks);
/// Unregisters and frees the VFS named `name`; no connection may still use it.
void agadir_sim_vfs_unregister(const char *name);

/// SQLite result codes the hooks return.
int agadir_sim_ioerr_write(void);
int agadir_sim_ioerr_fsync(void);
int agadir_sim_ioerr_truncate(void);
int agadir_sim_ioerr_delete(void);
int agadir_sim_full(void);
int agadir_sim_open_wal(void);
int agadir_sim_open_main_journal(void);

#endif
