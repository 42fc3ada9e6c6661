// Placeholder: replaced by the dlopen shim for oneDNN.
int cohort_dnnl_placeholder(void);
