import CDNNL

/// What went wrong reaching oneDNN: the library is missing, or a call
/// returned a status other than `dnnl_success`.
public enum OneDNNError: Error, CustomStringConvertible {
    /// dlopen or dlsym failed; `reason` is the loader's message.
    case libraryMissing(reason: String)
    /// `call` returned `status` (`statusName` is oneDNN's own spelling,
    /// e.g. "unimplemented") while doing `context`.
    case call(String, status: UInt32, statusName: String, context: String)

    public var description: String {
        switch self {
        case .libraryMissing(let reason):
            return "oneDNN (libdnnl.so.2) could not be loaded: \(reason). "
                + "Install it with `apt-get install libdnnl2` (Debian/Ubuntu; `libdnnl-dev` to build), "
                + "or use the reference backend."
        case .call(let call, let status, let statusName, let context):
            return "oneDNN \(call) failed with \(statusName) (status \(status)) for \(context)"
        }
    }
}

extension OneDNNError {
    /// oneDNN has no implementation for what was asked (a plan may then try another).
    var isUnimplemented: Bool {
        if case .call(_, let status, _, _) = self { return status == dnnl_unimplemented.rawValue }
        return false
    }
}

/// The loaded function table. Only `OneDNNBackend.init` reaches this before
/// `cohort_dnnl_load` succeeded, and it checks first.
let dnnl = cohort_dnnl().pointee

/// Throws `OneDNNError.call` unless `status` is success.
func check(_ status: dnnl_status_t, _ call: String, _ context: @autoclosure () -> String) throws(OneDNNError) {
    guard status != dnnl_success else { return }
    throw OneDNNError.call(call, status: status.rawValue,
                           statusName: dnnl.dnnl_status2str(status).map { String(cString: $0) } ?? "unknown status", context: context())
}

/// For calls inside the (non-throwing) `Backend` methods: a failure there is
/// a broken invariant (a shape the plan accepted no longer executing), so it
/// stops the program with the call and status. `fatalError`, not
/// `preconditionFailure`, because release builds drop the latter's message.
func mustSucceed(_ status: dnnl_status_t, _ call: String, _ context: @autoclosure () -> String) {
    do { try check(status, call, context()) } catch { fatalError(error.description) }
}
