int cohort_dnnl_placeholder(void) { return 0; }
