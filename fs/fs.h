/* fs/fs.h: the whole contract of the fs module (tree views; the FUSE daemon arrives with
 * issue 4). */
#ifndef STORKFS_FS_H
#define STORKFS_FS_H

/** Compare two version strings the way dpkg does (epoch, upstream version, Debian revision;
 * '~' sorts before everything, letters before non-letters). Used to pick `latest` and to list
 * versions in order. @return <0, 0, >0 like strcmp. Thread-safe; never fails: a missing or
 * non-numeric epoch counts as 0. */
int fs_version_cmp(const char *a, const char *b);

#endif
