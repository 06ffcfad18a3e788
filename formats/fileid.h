/* File identity: a tool must never write over one of its own inputs. Paths are compared by
 * what they name on disk (device + inode), so `a.lmdb`, `./a.lmdb` and a hard link all match. */
#ifndef LMR_FILEID_H
#define LMR_FILEID_H

/** 1 when both paths exist and name the same file, else 0. */
int lmr_same_file(const char *a, const char *b);

/** Refuse a set of outputs that would overwrite an input: each output, and its `.tmp` sibling
 *  (where the tools stage writes), is compared by identity with every input; two outputs naming
 *  one file are refused too. NULL entries and "-" (stdin/stdout) are skipped.
 *  @return 0, or LMR_EUSAGE with err naming both paths. */
int lmr_check_outputs(const char *const *inputs, int n_in, const char *const *outputs, int n_out,
                      char *err);

#endif
