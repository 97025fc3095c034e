package features

// Exception classes: the taxonomy of why orders get into trouble. The simulator
// labels its ground truth with them, the exception_class model predicts them in
// this order, and the README explains each.
const (
	ExceptionNone              = "none"
	ExceptionCredit            = "credit"
	ExceptionPricing           = "pricing"
	ExceptionInventory         = "inventory"
	ExceptionAddress           = "address"
	ExceptionEDIMapping        = "edi_mapping"
	ExceptionCarrier           = "carrier"
	ExceptionWarehouseCapacity = "warehouse_capacity"
	ExceptionInvoicing         = "invoicing"
)

// ExceptionClasses lists the classes in model output order; "none" comes first.
var ExceptionClasses = []string{
	ExceptionNone, ExceptionCredit, ExceptionPricing, ExceptionInventory, ExceptionAddress,
	ExceptionEDIMapping, ExceptionCarrier, ExceptionWarehouseCapacity, ExceptionInvoicing,
}
