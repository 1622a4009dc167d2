//! iommu placeholder
